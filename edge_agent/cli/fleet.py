"""``edge-agent fleet``: the broker's side of the fleet PKI: revoke a device, re-issue the CRL, generate the access rules."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryptography import x509

from edge_agent.errors import ConfigError
from edge_agent.fleet import pki
from edge_agent.fleet.broker_security import CONTROL_ROOM_USER, write_dynsec_config
from edge_agent.identity.registry import DeviceRegistry


def register(subparsers: argparse._SubParsersAction) -> None:
    fleet = subparsers.add_parser("fleet", help="fleet PKI and broker access rules (run centrally)")
    sub = fleet.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)

    p = sub.add_parser("revoke", help="revoke a device's certificates: writes the CA's crl.pem for the broker's crlfile")
    p.add_argument("device", help="device id (certificate CN)")
    p.add_argument("--ca", required=True, type=Path, help="the fleet CA directory (ca.pem, ca.key)")
    p.add_argument("--cert", type=Path, help="the device's client.pem, if it was issued before the CA kept an index")
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("crl", help="re-issue the CA's CRL (before its next-update date)")
    p.add_argument("--ca", required=True, type=Path)
    p.set_defaults(func=cmd_crl)

    p = sub.add_parser("broker-security", help="write Mosquitto's dynamic-security rules for the registry's devices")
    p.add_argument("--registry", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--ca", type=Path, help="leave out devices whose certificates this CA revoked")
    p.add_argument("--control-room", action="append", default=None, metavar="NAME", help=f"a control-room certificate CN (default {CONTROL_ROOM_USER}; repeatable)")
    p.set_defaults(func=cmd_broker_security)


def cmd_revoke(args: argparse.Namespace) -> int:
    ca = pki.load_ca(args.ca)
    certificate = None
    if args.cert is not None:
        try:
            certificate = x509.load_pem_x509_certificate(args.cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read certificate {args.cert}: {exc}", "pass the device's client.pem") from None
    serials = pki.revoke(ca, args.device, certificate=certificate)
    if serials:
        print(f"revoked {len(serials)} certificate(s) of {args.device}: {', '.join(format(s, 'x') for s in serials)}")
    else:
        print(f"every certificate of {args.device} was already revoked")
    print(f"CRL: {ca.crl_path} (valid until {_next_update(ca)})")
    print("next: copy it to the broker's crlfile and restart the broker (queued alerts persist; devices reconnect within seconds);")
    print("      regenerate the broker's access rules with: edge-agent fleet broker-security --ca ... ")
    return 0


def cmd_crl(args: argparse.Namespace) -> int:
    ca = pki.load_ca(args.ca)
    pki.write_crl(ca)
    print(f"CRL: {ca.crl_path} lists {len(pki.revoked(ca))} revoked certificate(s), valid until {_next_update(ca)}")
    return 0


def cmd_broker_security(args: argparse.Namespace) -> int:
    devices = set(DeviceRegistry.load(args.registry).devices)
    left_out: set[str] = set()
    if args.ca is not None:
        left_out = devices & {r.common_name for r in pki.revoked(pki.load_ca(args.ca))}
    rooms = args.control_room or [CONTROL_ROOM_USER]
    write_dynsec_config(args.out, devices - left_out, rooms)
    print(f"wrote {args.out}: {len(devices - left_out)} device(s), control room(s) {', '.join(rooms)}"
          + (f"; left out (revoked): {', '.join(sorted(left_out))}" if left_out else ""))
    return 0


def _next_update(ca: pki.CA) -> str:
    crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    return f"{crl.next_update_utc:%Y-%m-%d %H:%M} UTC"
