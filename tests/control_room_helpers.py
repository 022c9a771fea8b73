"""Control-room test helpers: signed deployment records, an audit recorder, a ready intake."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.control_room.local_room import ALWAYS, local_intake, sample_deployment

make_deployment = sample_deployment
#: One authority for tests about delivery rather than deployment checks (with the fixed ALWAYS
#: window the record's bytes are fixed too, so importing it again into a shared store is a no-op).
DELIVERY_AUTHORITY = Ed25519PrivateKey.generate()


class AuditRecorder:
    """Stands in for the audit log where a test looks only at what was appended."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict]] = []

    def append(self, kind: str, details: dict, actor: str | None = None) -> None:
        self.records.append((kind, details))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.records]


def intake_for(registry, control_room_key, store, deployment_id: str = "dep-test", devices: tuple[str, ...] = ("cam-01", "cam-02", "cam-03"),
               audit=None, **kwargs):
    """An AlertIntake whose store holds one deployment naming ``devices`` (threshold 0.5), open at any time."""
    record = sample_deployment(DELIVERY_AUTHORITY, deployment_id, devices, start=ALWAYS[0], end=ALWAYS[1], threshold=0.5)
    return local_intake(registry, control_room_key, store, DELIVERY_AUTHORITY, [record], audit if audit is not None else AuditRecorder(), **kwargs)
