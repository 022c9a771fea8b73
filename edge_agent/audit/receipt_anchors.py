"""Anchor a device's audit log to the control room's receipts (issue 12.1).

Each alert carries the device's audit-chain head when it was committed (``audit_head``), and the
control room's signed receipt echoes it. The chain alone cannot show that its *end* was cut off
(a log truncated after any checkpoint still verifies); a receipt can: it is held by someone else
and signed by a key the device does not have. So with the control room's receipts for a device,
every head they bind must be in the log with exactly that hash. The chain check
(``verify_audit_log``) then covers every record up to the highest anchored one: nothing up to the
last receipted point was cut or rewritten. A log that ends before an anchored record fails,
naming the missing range.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_agent.errors import EdgeAgentError
from edge_agent.events.receipts import Receipt, parse_message, verify_message
from edge_agent.safe_load import json_loads
from edge_agent.timestamps import format_timestamp


@dataclass(frozen=True)
class AnchorResult:
    ok: bool
    receipts: int  # valid receipts for this device that were checked
    anchored_seq: int  # the highest audit seq a receipt binds (-1: none)
    last_seq: int  # the last seq in the log (-1: empty)
    reason: str = ""

    def summary(self) -> str:
        if not self.ok:
            return f"receipt check FAILED: {self.reason}"
        if self.anchored_seq < 0:
            return f"receipt check: {self.receipts} receipt(s), none binds a record of this log yet"
        return (f"receipt check OK: {self.receipts} receipt(s) from the control room bind this log up to seq {self.anchored_seq} "
                f"(of {self.last_seq}): nothing up to the last receipted point was cut or rewritten")


def read_receipts(path: Path) -> list[bytes]:
    """One JCS receipt per line (``edge-agent control-room receipts`` writes them)."""
    return [line.encode() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def check_receipt_anchors(log_path: Path, receipts: list[bytes], control_room_key: Ed25519PublicKey, device_id: str) -> AnchorResult:
    heads: dict[int, str] = {}
    last = -1
    for line in Path(log_path).read_bytes().splitlines():
        try:
            doc = json_loads(line)
            heads[int(doc["seq"])] = str(doc["hash"])
            last = max(last, int(doc["seq"]))
        except (ValueError, KeyError, TypeError):
            continue  # verify_audit_log names broken lines; here only the heads matter
    checked, anchored = 0, -1
    for number, payload in enumerate(receipts, 1):
        try:
            receipt = parse_message(payload)
            if not isinstance(receipt, Receipt):
                raise EdgeAgentError(f"line {number} is a {receipt.SCHEMA}, not a receipt", "pass the control room's receipts")
            verify_message(receipt, control_room_key)
        except EdgeAgentError as exc:
            return AnchorResult(False, checked, anchored, last, f"receipt on line {number} is not valid: {exc.message}")
        if receipt.device_id != device_id:
            continue
        checked += 1
        head = receipt.audit_head
        if head.seq < 0:
            continue
        if head.seq not in heads:
            top = max((r for r in _heads(receipts, control_room_key, device_id)), default=head.seq)
            return AnchorResult(
                False, checked, anchored, last,
                f"the log ends at seq {last} but the control room's receipt for event {receipt.event_id} (stored {format_timestamp(receipt.stored_at)}) "
                f"binds seq {head.seq}: records {last + 1}..{top} are missing (the log was cut after seq {last})",
            )
        if not hmac.compare_digest(heads[head.seq], head.hash):
            return AnchorResult(False, checked, anchored, last,
                                f"record seq {head.seq} was rewritten: its hash differs from the one the control room signed for event {receipt.event_id}")
        anchored = max(anchored, head.seq)
    return AnchorResult(True, checked, anchored, last)


def _heads(receipts: list[bytes], key: Ed25519PublicKey, device_id: str) -> list[int]:
    """Every audit seq the (valid) receipts for ``device_id`` bind: the extent of a cut."""
    seqs = []
    for payload in receipts:
        try:
            receipt = parse_message(payload)
            verify_message(receipt, key)
        except EdgeAgentError:
            continue
        if isinstance(receipt, Receipt) and receipt.device_id == device_id:
            seqs.append(receipt.audit_head.seq)
    return seqs
