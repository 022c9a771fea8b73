"""What both MQTT ends share: broker settings, a pinned-CA mutual-TLS context, backoff with jitter.

Only the CA named in the configuration is trusted (no system store), TLS 1.2 is the floor, and
the client always presents its certificate: the broker maps the certificate CN to the MQTT user
that its ACL checks.
"""

from __future__ import annotations

import random
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge_agent.config_reader import Table, read_section, read_toml, setting
from edge_agent.errors import ConfigError


@dataclass(frozen=True)
class BrokerConfig:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    keepalive_s: int = 30

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"broker port {self.port} is out of range", "use e.g. 8883")
        for name in ("ca_file", "cert_file", "key_file"):
            path = Path(getattr(self, name))
            if not path.is_file():
                raise ConfigError(f"broker {name.replace('_', ' ')} {path} not found", "check the broker TLS settings")

    @classmethod
    def from_url(cls, url: str, ca_file: Path, cert_file: Path, key_file: Path, **kw: Any) -> "BrokerConfig":
        """``mqtts://host:port`` (only TLS is accepted)."""
        parts = urlsplit(url)
        if parts.scheme != "mqtts" or not parts.hostname:
            raise ConfigError(f"broker URL {url!r} must look like mqtts://host:8883", "plain mqtt:// is refused: alerts travel over TLS only")
        return cls(parts.hostname, parts.port or 8883, Path(ca_file), Path(cert_file), Path(key_file), **kw)

    @classmethod
    def from_toml(cls, path: Path) -> "BrokerConfig":
        """The ``[broker]`` table of a control-room config file (``BrokerFile``), read by the same
        reader as the agent's config: unknown keys, a key file readable by others, a missing or
        misplaced file are refused with the key path named."""
        path = Path(path)
        doc, _ = read_toml(path, "config file", "check the --config path")
        section = doc.get("broker")
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path} has no [broker] table", "add url, ca, cert and key under [broker]")
        broker = read_section(Table(path, "broker", section, path.parent, check_files=True), BrokerFile)
        return cls.from_url(broker.url, broker.ca, broker.cert, broker.key, keepalive_s=broker.keepalive_s)


@dataclass(frozen=True)
class BrokerFile:
    """The ``[broker]`` table a control-room listener is configured by (paths relative to the file)."""

    url: str = setting("string", help="broker URL, mqtts://host:8883 (plain mqtt:// is refused)")
    ca: Path = setting("path", help="broker CA certificate (PEM)")
    cert: Path = setting("path", help="control-room client certificate (PEM)")
    key: Path = setting("path", help="control-room client private key (PEM, 0600)", private=True)
    keepalive_s: int = setting("integer", 30, "MQTT keepalive seconds", lo=5, hi=3600)


def tls_context(config: BrokerConfig) -> ssl.SSLContext:
    """Client context: TLS >= 1.2, only the configured CA trusted, hostname checked, client cert loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=str(config.ca_file))
        ctx.load_cert_chain(certfile=str(config.cert_file), keyfile=str(config.key_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load broker TLS files ({exc})", "check the CA, certificate and key paths and that the key matches the certificate") from None
    return ctx


RECONNECT_CAP_S = 5.0


class Backoff:
    """Exponential backoff with jitter: delay ~ U(c/2, c), c = min(cap, base * 2^attempt).

    The cap bounds how long a device stays away after the broker is back: at most ``cap_s``
    however long the outage was (a 30 s cap cost up to 30 s more after a 30 s outage, issue 11).
    The jitter spreads a fleet that lost the broker at the same moment over [cap/2, cap] per
    attempt, so its reconnections arrive spread over seconds, not in one burst of TLS handshakes.
    """

    def __init__(self, base_s: float = 0.25, cap_s: float = RECONNECT_CAP_S, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - reconnect jitter, not a secret

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def disable_nagle(client: object, userdata: object, sock: object) -> None:
    """paho ``on_socket_open`` hook: alerts are small, latency matters more than packet count."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        pass  # not a TCP socket (e.g. a proxy); nothing to tune
