"""The fleet's small X.509 PKI for MQTT mutual TLS: one CA, a broker certificate, one client certificate per device.

Why X.509 here when the rest of the system uses raw Ed25519/X25519: brokers (Mosquitto, EMQX,
HiveMQ, AWS IoT Core) authenticate clients by TLS certificates, and Mosquitto's
``use_identity_as_username`` turns the client certificate's CN (= device id) into the user
name that the per-device ACL ``pattern write lfr/v1/%u/#`` checks.

Keys are ECDSA P-256 (supported by every broker and TLS stack above); private keys are PEM
PKCS#8 files created 0600 and never overwritten.

Revocation (issue 10.17): the CA directory keeps an index of what it issued (``issued.json``) and
what it revoked (``revoked.json``), and a CRL (``crl.pem``) the broker loads with ``crlfile``, so a
lost or stolen device's certificate is refused at the TLS handshake. The CRL exists from the
CA's creation (Mosquitto with ``crlfile`` refuses every client of a CA it has no CRL for) and is
valid for ``CRL_VALIDITY``; re-issue it (``edge-agent fleet crl``) before it lapses.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.durable import atomic_write
from edge_agent.errors import ConfigError, SecurityError

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CRL_FILE = "crl.pem"
ISSUED_FILE = "issued.json"
REVOKED_FILE = "revoked.json"
CRL_VALIDITY = timedelta(days=365)


@dataclass(frozen=True)
class CA:
    """A loaded certificate authority: its certificate, private key and where they live."""

    cert_path: Path
    key_path: Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def name(self) -> str:
        return common_name(self.certificate)

    @property
    def crl_path(self) -> Path:
        return self.cert_path.parent / CRL_FILE


@dataclass(frozen=True)
class IssuedCert:
    cert_path: Path
    key_path: Path
    certificate: x509.Certificate


def _now(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware UTC")
    return now


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise SecurityError(f"refusing to overwrite existing file {path}", "move it away first if you really mean to replace it") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attrs)


def create_ca(directory: str | Path, name: str, *, valid_days: int = 3650, now: datetime | None = None) -> CA:
    """Create ``ca.pem`` and ``ca.key`` (0600) in ``directory``; refuses to overwrite an existing CA."""
    d = Path(directory)
    cert_path, key_path = d / CA_CERT, d / CA_KEY
    for p in (cert_path, key_path):
        if p.exists():
            raise SecurityError(f"refusing to overwrite existing CA file {p}", "use load_ca() to issue from the existing CA")
    now = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(name, "edge-agent fleet")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, _cert_pem(cert), 0o644)
    ca = CA(cert_path, key_path, cert, key)
    write_crl(ca, now)
    return ca


def load_ca(directory: str | Path) -> CA:
    """Load ``ca.pem``/``ca.key`` from ``directory``; the key must be readable by its owner only."""
    d = Path(directory)
    cert_path, key_path = d / CA_CERT, d / CA_KEY
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if key_path.stat().st_mode & 0o077:
            raise SecurityError(f"CA key {key_path} is accessible by group/others", f"run: chmod 600 {key_path}")
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise ConfigError(f"fleet CA file {exc.filename} not found", "create the CA first: python deploy/provision.py ca --dir DIR") from None
    except ValueError as exc:
        raise SecurityError(f"fleet CA in {d} is not readable PEM: {exc}", "restore the CA from backup") from None
    cert_key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(cert_key, ec.EllipticCurvePublicKey) \
            or key.public_key().public_numbers() != cert_key.public_numbers():
        raise SecurityError(f"CA key {key_path} does not match certificate {cert_path}", "restore the matching pair from backup")
    return CA(cert_path, key_path, cert, key)


def _leaf(
    ca: CA,
    directory: Path,
    stem: str,
    common_name: str,
    usage: x509.ObjectIdentifier,
    san: Sequence[x509.GeneralName],
    valid_days: int,
    now: datetime | None,
) -> IssuedCert:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    for p in (cert_path, key_path):
        if p.exists():
            raise SecurityError(f"refusing to overwrite existing file {p}", "certificates are not replaced in place; move the old ones away")
    now = _now(now)
    not_after = min(now + timedelta(days=valid_days), ca.certificate.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=True, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, _cert_pem(cert), 0o644)
    _record_issued(ca, cert, cert_path)
    return IssuedCert(cert_path, key_path, cert)


def issue_server_cert(
    ca: CA,
    directory: str | Path,
    hostnames: Iterable[str],
    ips: Iterable[str] = (),
    *,
    stem: str = "server",
    valid_days: int = 825,
    now: datetime | None = None,
) -> IssuedCert:
    """A broker certificate for ``hostnames``/``ips`` (subjectAltName; clients check it) -> ``server.pem``/``server.key``."""
    hosts = [h for h in hostnames]
    addresses = [ipaddress.ip_address(i) for i in ips]
    if not hosts and not addresses:
        raise ConfigError("a server certificate needs at least one host name or IP address", "pass the broker's DNS name")
    san: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(a) for a in addresses]
    cn = hosts[0] if hosts else str(addresses[0])
    return _leaf(ca, Path(directory), stem, cn, ExtendedKeyUsageOID.SERVER_AUTH, san, valid_days, now)


def issue_client_cert(
    ca: CA,
    directory: str | Path,
    common_name: str,
    *,
    stem: str = "client",
    valid_days: int = 825,
    now: datetime | None = None,
) -> IssuedCert:
    """A client certificate whose CN is the MQTT identity (device id or control-room name) -> ``client.pem``/``client.key``."""
    if not common_name or any(c in common_name for c in "/+#") or len(common_name) > 64:
        raise ConfigError(f"client certificate name {common_name!r} cannot be an MQTT user name", "use the device id")
    return _leaf(ca, Path(directory), stem, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, (), valid_days, now)


def common_name(cert: x509.Certificate) -> str:
    value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return value.decode("utf-8") if isinstance(value, bytes) else value


# -- revocation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revoked:
    serial: int
    common_name: str
    revoked_at: datetime


def _index(ca: CA, name: str) -> list[dict]:
    path = ca.cert_path.parent / name
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, list):
            raise ValueError("not a list")
        return doc
    except ValueError as exc:
        raise ConfigError(f"CA index {path} is damaged: {exc}", "restore the CA directory from backup") from None


def _save_index(ca: CA, name: str, entries: list[dict]) -> None:
    atomic_write(ca.cert_path.parent / name, json.dumps(entries, indent=1).encode() + b"\n", mode=0o644)


def _record_issued(ca: CA, cert: x509.Certificate, cert_path: Path) -> None:
    entries = _index(ca, ISSUED_FILE)
    entries.append({"serial": format(cert.serial_number, "x"), "cn": common_name(cert), "not_after": cert.not_valid_after_utc.isoformat(), "path": str(cert_path)})
    _save_index(ca, ISSUED_FILE, entries)


def revoked(ca: CA) -> list[Revoked]:
    return [Revoked(int(e["serial"], 16), str(e["cn"]), datetime.fromisoformat(e["revoked_at"])) for e in _index(ca, REVOKED_FILE)]


def write_crl(ca: CA, now: datetime | None = None) -> Path:
    """(Re-)issue ``crl.pem`` listing every revoked serial, valid for CRL_VALIDITY from ``now``."""
    now = _now(now)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
    )
    for entry in revoked(ca):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at).build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    return atomic_write(ca.crl_path, crl.public_bytes(serialization.Encoding.PEM), mode=0o644)


def revoke(ca: CA, name: str, *, certificate: x509.Certificate | None = None, now: datetime | None = None) -> list[int]:
    """Revoke every certificate this CA issued to CN ``name`` (and ``certificate``, for one
    issued before the index existed), then re-issue the CRL. Returns the serials newly revoked."""
    now = _now(now)
    if certificate is not None and certificate.issuer != ca.certificate.subject:
        raise SecurityError("that certificate was not issued by this CA", "pass the fleet CA that issued it")
    already = {r.serial for r in revoked(ca)}
    serials = {int(e["serial"], 16) for e in _index(ca, ISSUED_FILE) if e.get("cn") == name}
    if certificate is not None:
        if common_name(certificate) != name:
            raise ConfigError(f"the certificate is for {common_name(certificate)!r}, not {name!r}", "check the device id")
        serials.add(certificate.serial_number)
    new = sorted(serials - already)
    if not serials:
        raise ConfigError(
            f"this CA has no record of a certificate for {name!r}",
            "check the device id, or pass the device's certificate file (--cert) if it was issued before the CA kept an index",
        )
    entries = _index(ca, REVOKED_FILE)
    entries += [{"serial": format(s, "x"), "cn": name, "revoked_at": now.isoformat()} for s in new]
    _save_index(ca, REVOKED_FILE, entries)
    write_crl(ca, now)
    return new
