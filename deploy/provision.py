#!/usr/bin/env python3
"""Fleet provisioning, run centrally by a fleet engineer (needs edge_agent installed).

  python deploy/provision.py ca --dir pki/ca --name "Force X edge-agent fleet CA"
  python deploy/provision.py server-cert --ca pki/ca --out pki/broker --host mqtt.force.example [--ip 10.0.0.5]
  python deploy/provision.py client-cert --ca pki/ca --out pki/control-room --name control-room
  python deploy/provision.py device --id bwv-0001 --out devices/bwv-0001 --ca pki/ca \\
      --registry authority/registry.json --authority-pub authority/authority_ed25519.pub \\
      --control-room-pub control-room/control_room_x25519.pub --mqtt-host mqtt.force.example [--profile pi5]

``device`` writes devices/<id>/{agent.toml,keys/,tls/} (copied to /etc/edge-agent by install.py)
and registers the device's public keys in the authority's registry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="provision", description="edge-agent fleet provisioning")
    sub = p.add_subparsers(dest="command", required=True)

    ca = sub.add_parser("ca", help="create the fleet CA (ca.pem, ca.key 0600)")
    ca.add_argument("--dir", required=True, type=Path)
    ca.add_argument("--name", default="edge-agent fleet CA")
    ca.add_argument("--days", type=int, default=3650)

    srv = sub.add_parser("server-cert", help="issue the broker's TLS certificate")
    srv.add_argument("--ca", required=True, type=Path)
    srv.add_argument("--out", required=True, type=Path)
    srv.add_argument("--host", action="append", default=[], help="DNS name (repeatable)")
    srv.add_argument("--ip", action="append", default=[], help="IP address (repeatable)")

    cli = sub.add_parser("client-cert", help="issue a client certificate (e.g. a control-room console)")
    cli.add_argument("--ca", required=True, type=Path)
    cli.add_argument("--out", required=True, type=Path)
    cli.add_argument("--name", required=True, help="certificate CN = MQTT user name")

    dev = sub.add_parser("device", help="provision one device")
    dev.add_argument("--id", required=True, dest="device_id")
    dev.add_argument("--out", required=True, type=Path)
    dev.add_argument("--ca", required=True, type=Path)
    dev.add_argument("--registry", required=True, type=Path)
    dev.add_argument("--authority-pub", required=True, type=Path)
    dev.add_argument("--control-room-pub", required=True, type=Path)
    dev.add_argument("--mqtt-host", required=True)
    dev.add_argument("--mqtt-port", type=int, default=8883)
    dev.add_argument("--profile", default="pi5")
    dev.add_argument("--source", default="picamera:0", help="capture source spec")
    dev.add_argument("--template", type=Path, default=None)
    return p


def run(args: argparse.Namespace) -> int:
    from edge_agent.fleet import pki
    from edge_agent.fleet.provision import (
        DEFAULT_TEMPLATE,
        DeviceSettings,
        provision_device,
    )

    if args.command == "ca":
        ca = pki.create_ca(args.dir, args.name, valid_days=args.days)
        print(f"fleet CA created: {ca.cert_path} (key {ca.key_path}, keep it offline)")
    elif args.command == "server-cert":
        issued = pki.issue_server_cert(pki.load_ca(args.ca), args.out, args.host, args.ip)
        print(f"broker certificate: {issued.cert_path} key: {issued.key_path}")
    elif args.command == "client-cert":
        issued = pki.issue_client_cert(pki.load_ca(args.ca), args.out, args.name)
        print(f"client certificate for {args.name}: {issued.cert_path} key: {issued.key_path}")
    else:
        settings = DeviceSettings(args.device_id, args.mqtt_host, args.mqtt_port, args.profile, args.source)
        result = provision_device(
            settings, args.out, args.ca, args.registry, args.authority_pub, args.control_room_pub,
            template=args.template or DEFAULT_TEMPLATE,
        )
        print(f"device {result.device_id} provisioned in {result.directory}; registered in {args.registry}")
        print(f"next: python deploy/install.py --config-dir {result.directory}   (on the device, as root)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from edge_agent.errors import EdgeAgentError
    except ImportError:
        print("error: edge_agent is not installed in this Python\n  hint: run from the project venv", file=sys.stderr)
        return 2
    try:
        return run(args)
    except EdgeAgentError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
