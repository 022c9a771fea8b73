"""Crashes the fuzzers found, each pinned as a plain test (issue 11.4)."""

from __future__ import annotations

import json

import pytest

from edge_agent.audit.log import AuditLog, encode
from edge_agent.audit.verify import verify_audit_log
from edge_agent.deployment.errors import DeploymentRefused
from edge_agent.errors import ImageError
from edge_agent.vision.image_io import decode_image
from edge_agent.watchlist.loader import load_watchlist
from targets import DEVICE, DURING, MODEL, _seal_package, _split_real, make_world


def test_audit_hash_fields_with_non_ascii_text_are_a_broken_log_not_a_type_error(tmp_path):
    """hmac.compare_digest raises TypeError on non-ASCII str: verify let it escape."""
    world = make_world()
    path = tmp_path / "audit.log"
    with AuditLog.open(path, world.device.signing_key, f"device:{DEVICE}") as log:
        log.append("agent_started", {"version": "0.1.0"})
    lines = path.read_text().splitlines()
    for field in ("prev", "hash"):
        doc = json.loads(lines[0])
        doc[field] = "é" * 64
        path.write_bytes(encode(doc) + b"\n" + "\n".join(lines[1:]).encode() + b"\n")  # canonical, so the hash checks are reached
        result = verify_audit_log(path, world.device.signing_public)
        assert not result.ok and result.first_bad_line == 1, result


def test_an_empty_image_is_an_image_error():
    """cv2.imdecode raises cv2.error (an assertion) on an empty buffer instead of returning None."""
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"", "probe.jpg")


def test_a_package_whose_embedded_deployment_signature_is_bad_is_a_deployment_refusal():
    """The authority signed the package, but the deployment inside it does not verify: the loader
    raised a bare SecurityError, which is neither of its documented refusals."""
    world = make_world()
    header_bytes, plaintext = _split_real(world, 1)
    header = json.loads(header_bytes)
    header["deployment"]["authority_signature"] = "A" * 86 + "=="  # well-formed base64 of 64 zero bytes: not the signature
    data = _seal_package(world, json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), plaintext)
    with pytest.raises(DeploymentRefused, match="signature is not valid"):
        load_watchlist(data, world.device, world.authority.public_key(), MODEL, DURING)


@pytest.mark.parametrize("key, line", [("signing_key", 'signing_key = "~nosuchuser-fuzz/device.key"'),
                                       ("source", 'source = "~nosuchuser-fuzz/video.mp4"')])
def test_a_path_in_an_unknown_users_home_is_a_config_error(tmp_path, key, line):
    """pathlib's expanduser raises RuntimeError for ~name when no such user exists."""
    from edge_agent.agent.config import load_config
    from edge_agent.errors import ConfigError
    from targets import CONFIG_SEED

    field = line.split(" = ")[0]
    text = "\n".join(line if row.startswith(f"{field} = ") else row for row in CONFIG_SEED.splitlines())
    assert line in text
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="home folder cannot be found") as info:
        load_config(path, check_files=False)
    assert key in info.value.message


@pytest.mark.parametrize("schema", ['{"":1}', "[1]"])
def test_a_receipt_whose_schema_is_an_object_is_a_format_error(schema):
    """parse_message looked the schema up in a dict: an object or list there raised TypeError (unhashable)."""
    from edge_agent.events.receipts import MessageFormatError, parse_message

    with pytest.raises(MessageFormatError, match="unsupported message schema"):
        parse_message(('{"co":"2","schema":' + schema + "}").encode())


def test_a_signed_v3_record_dated_before_the_year_1000_is_read_not_a_timestamp_crash():
    """deployment_signed found it: strftime('%Y') writes year 35 as '35', so the one timestamp form
    could not carry a time it had just parsed ('0035-11-22T08:00:00.000Z') and TimestampError escaped."""
    from edge_agent.crypto.canonical import jcs
    from edge_agent.crypto.signing import DEPLOYMENT_V3, sign
    from edge_agent.deployment.record import SignedDeployment
    from edge_agent.timestamps import format_timestamp, parse_timestamp

    world = make_world()
    doc = {**world.record.to_json(), "start": "0035-11-22T08:00:00.000Z"}
    data = jcs(doc)
    record = SignedDeployment(data, sign(world.authority, DEPLOYMENT_V3, data)).verify(world.authority.public_key())
    assert record.start.year == 35 and record.canonical_bytes() == data
    assert format_timestamp(parse_timestamp("0035-11-22T08:00:00.000Z")) == "0035-11-22T08:00:00.000Z"


def test_a_package_header_with_an_integer_beyond_2_53_is_tampered_not_a_canonical_json_error():
    """Found by watchlist_header (220,897 executions): the authority re-signed a header holding an
    integer JSON can carry but RFC 8785 cannot encode; the canonical-form check raised
    CanonicalJsonError out of decode_container instead of its documented PackageTampered."""
    from edge_agent.watchlist.errors import PackageTampered

    world = make_world()
    header_bytes, plaintext = _split_real(world, 1)
    header = json.loads(header_bytes)
    header["template_count"] = 266666666666666666666666666666666666666666
    data = _seal_package(world, json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), plaintext)
    with pytest.raises(PackageTampered, match="structure is corrupt"):
        load_watchlist(data, world.device, world.authority.public_key(), MODEL, DURING)


def test_a_png_chunk_longer_than_the_file_is_refused_before_opencv_allocates_it():
    """image_header: a 48x48 PNG whose IDAT declares 0xffff1803 bytes made cv2.imdecode allocate
    4 GB (libFuzzer's out-of-memory limit) for a 530-byte file; a chunk that does not fit is refused."""
    import resource
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
        return struct.pack(">I", len(body) if length is None else length) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 48, 48, 8, 2, 0, 0, 0))
    lying = b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(bytes(100)), length=0xFFFF1803)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError, match="cannot be decoded"):
        decode_image(lying, "probe.png")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024, "the chunk's length was allocated"
    whole = b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(bytes(48 * 48 * 3 + 48))) + chunk(b"IEND", b"")
    assert decode_image(whole, "probe.png").shape == (48, 48, 3)  # positive control: a PNG whose chunks fit
