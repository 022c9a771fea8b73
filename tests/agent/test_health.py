"""systemd notify messages reach a real datagram socket, and the watchdog is rate-limited."""

from __future__ import annotations

import socket

from edge_agent.agent.health import SystemdNotifier, cpu_temperature_c


def test_ready_watchdog_stopping_are_sent(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(2)
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")  # 10 s: ping every 5 s at most
    notifier = SystemdNotifier(path)
    notifier.ready("processing")
    assert server.recv(256) == b"READY=1\nSTATUS=processing"
    notifier.watchdog()
    notifier.watchdog()  # within the interval: not sent
    notifier.stopping()
    assert server.recv(256) == b"WATCHDOG=1"
    assert server.recv(256) == b"STOPPING=1"
    notifier.close()
    server.close()


def test_disabled_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    notifier.ready()  # no error


def test_temperature_reading(tmp_path):
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert cpu_temperature_c(zone) == 48.312
    assert cpu_temperature_c(tmp_path / "absent") is None
