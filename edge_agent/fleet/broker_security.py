"""Who may do what on the broker: Mosquitto's dynamic-security configuration, generated from the device registry.

Why not the plain ``acl_file``: Mosquitto 2.0's ACL file never checks a SUBSCRIBE, only delivery.
A device certificate could therefore join the control room's shared subscription
(``$share/control-room/lfr/v1/+/alert``): Mosquitto handed it every other alert, refused to
deliver it under the read ACL and dropped it, while the sending device got a PUBACK and deleted
it (issue 11: 20 of 40 alerts lost). The dynamic-security plugin checks subscriptions, so each
device gets exactly (docs/formats/topics.md, deploy/BROKER.md):

- publish: its own ``alert``, ``status`` (incl. its last will) and ``telemetry`` topics;
- subscribe and receive: its own ``receipt`` and ``adjudication`` topics, nothing else:
  never another device's topics, never an alert topic, never ``$share/...``;

and each control-room identity: subscribe/receive alerts (directly or through any ``$share``
group), status and telemetry; publish receipts and adjudication notices. Everything else is
denied by default, including to a certificate whose name is not in the file (a device the
registry does not know can connect but can do nothing). Device rights are written out per
device: Mosquitto 2.0 does not substitute ``%u`` in subscription ACLs.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge_agent.durable import atomic_write
from edge_agent.events.topics import DEVICE_INBOUND_KINDS, DEVICE_OUTBOUND_KINDS, PREFIX, topic
from edge_agent.identifiers import check_device_id

CONTROL_ROOM_USER = "control-room"
CONTROL_ROOM_ROLE = "control-room"
PLUGIN_NAME = "mosquitto_dynamic_security.so"
#: Where Debian, Raspberry Pi OS and source builds put the plugin (the multiarch directory varies).
PLUGIN_GLOBS = ("/usr/lib/*-linux-gnu/" + PLUGIN_NAME, "/usr/lib/" + PLUGIN_NAME, "/usr/local/lib/" + PLUGIN_NAME)


def find_dynsec_plugin() -> str | None:
    """$MOSQUITTO_DYNSEC, else the first installed copy of Mosquitto's dynamic-security plugin."""
    explicit = os.environ.get("MOSQUITTO_DYNSEC")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for pattern in PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def _acl(kind: str, topic_filter: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic_filter, "priority": 0, "allow": True}


def device_role(device_id: str) -> dict[str, Any]:
    """The rights of one device, literal topics only."""
    device_id = check_device_id(device_id)
    acls = [_acl("publishClientSend", topic(device_id, kind)) for kind in DEVICE_OUTBOUND_KINDS]
    for kind in DEVICE_INBOUND_KINDS:
        acls.append(_acl("subscribeLiteral", topic(device_id, kind)))
        acls.append(_acl("publishClientReceive", topic(device_id, kind)))
    return {"rolename": f"device-{device_id}", "acls": acls}


def control_room_role() -> dict[str, Any]:
    acls = []
    for kind in DEVICE_OUTBOUND_KINDS:
        every = f"{PREFIX}/+/{kind}"
        acls.append(_acl("subscribePattern", every))
        acls.append(_acl("publishClientReceive", every))
    acls.append(_acl("subscribePattern", f"$share/+/{PREFIX}/+/alert"))  # several listeners share the load
    for kind in DEVICE_INBOUND_KINDS:
        acls.append(_acl("publishClientSend", f"{PREFIX}/+/{kind}"))
    return {"rolename": CONTROL_ROOM_ROLE, "acls": acls}


def dynsec_config(device_ids: Iterable[str], control_room_users: Iterable[str] = (CONTROL_ROOM_USER,)) -> dict[str, Any]:
    """The plugin's JSON document: default deny, one client and role per device, the control-room role."""
    devices = sorted({check_device_id(d) for d in device_ids})
    rooms = sorted(set(control_room_users))
    clash = set(devices) & set(rooms)
    if clash:
        raise ValueError(f"{sorted(clash)} cannot be both a device and a control room")
    clients = [{"username": d, "textname": f"device {d}", "roles": [{"rolename": f"device-{d}", "priority": 0}], "groups": []} for d in devices]
    clients += [{"username": r, "textname": "control room", "roles": [{"rolename": CONTROL_ROOM_ROLE, "priority": 0}], "groups": []} for r in rooms]
    return {
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False, "subscribe": False, "unsubscribe": True},
        "clients": clients,
        "groups": [],
        "roles": [device_role(d) for d in devices] + [control_room_role()],
    }


def write_dynsec_config(path: Path, device_ids: Iterable[str], control_room_users: Iterable[str] = (CONTROL_ROOM_USER,)) -> Path:
    """Write the configuration atomically (0600: install it owned by the broker's user)."""
    doc = dynsec_config(device_ids, control_room_users)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n", mode=0o600)


__all__ = ["dynsec_config", "write_dynsec_config", "find_dynsec_plugin", "CONTROL_ROOM_USER"]
