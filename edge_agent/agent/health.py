"""systemd notify (READY, WATCHDOG, STATUS, STOPPING) and device readings for telemetry.

sd_notify is a single datagram to $NOTIFY_SOCKET; writing it here avoids a C dependency. The
watchdog is pinged from the frame loop, so a hung pipeline (not just a dead process) is restarted.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


class SystemdNotifier:
    """No-op when not started by systemd (NOTIFY_SOCKET unset)."""

    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._address = ("\0" + path[1:]) if path.startswith("@") else path
        self._sock: socket.socket | None = None
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        usec = os.environ.get("WATCHDOG_USEC")
        # Ping at half the watchdog period, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval_s = int(usec) / 2e6 if usec and usec.isdigit() else None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, message: str) -> None:
        if self._sock is not None:
            try:
                self._sock.sendto(message.encode(), self._address)
            except OSError:
                pass  # systemd went away (shutdown); nothing useful to do

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """Called once per processed frame; sends at most one ping per interval."""
        if self._sock is None or self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval_s:
            self._last_ping = now
            self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def cpu_temperature_c(path: Path = THERMAL_ZONE) -> float | None:
    """SoC temperature where the board exposes it (Raspberry Pi does), else None."""
    try:
        return int(path.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None
