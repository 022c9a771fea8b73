"""Which work a frame gets: which tracked faces are recognised again, and whether every detector runs.

Why: a face in view for a second is thirty frames of the same person. Aligning and embedding
each of them (about 8 ms of CPU per face on a 2-core x86, more on a Pi) spends most of a busy
frame on templates that add nothing the track's last one did not, and processes thirty
biometric templates of a passer-by where a few suffice (data minimisation, policing.md 12).
So a tracked face is recognised on its first frame, again whenever it comes markedly closer
(more pixels: the better view) or its detector score jumps (it turned towards the camera), and
at least every ``every_s`` seconds in any case. ``every_s = 0`` restores every face on every frame.

The short-range detector (close faces that fill the frame) follows the same rhythm: it runs on
a frame when its periodic pass is due, and on any frame where the full range finds no face
(``RecognitionCore.detect(every_range=False)``).

Retrospective searches do not use this: an investigator's recording is searched frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A face whose box grew this much since it was last recognised is seen closer: recognise it now.
CLOSER = 1.25
#: Frame times are floats (i / 30): an interval this close to ``every_s`` counts as reached.
_EPSILON_S = 1e-6
#: A detector score this much higher than at the last recognition: the face turned towards the camera.
SCORE_JUMP = 0.1


@dataclass(frozen=True)
class _Seen:
    at_s: float
    width: float
    score: float


class RecognitionSchedule:
    """Per track, when it was last recognised and how it looked then; forgets a track when it ends."""

    def __init__(self, every_s: float = 0.2) -> None:
        if every_s < 0:
            raise ValueError("every_s must be >= 0")
        self.every_s = every_s
        self._last: dict[int, _Seen] = {}
        self._full_pass_at: float | None = None

    def every_range_due(self, now_s: float) -> bool:
        """Whether this frame runs every detector (the periodic pass); otherwise the short range
        runs only where the full range finds nothing."""
        if self.every_s == 0 or self._full_pass_at is None or not 0 <= now_s - self._full_pass_at < self.every_s - _EPSILON_S:
            self._full_pass_at = now_s
            return True
        return False

    def due(self, track_id: int, box: tuple[float, float, float, float], score: float, now_s: float) -> bool:
        """Whether to recognise this tracked face on this frame; records it when so. A clock that
        went backwards (a replay restarted) counts as due."""
        width = box[2] - box[0]
        last = self._last.get(track_id)
        if (
            self.every_s == 0
            or last is None
            or not 0 <= now_s - last.at_s < self.every_s - _EPSILON_S
            or width >= last.width * CLOSER
            or score >= last.score + SCORE_JUMP
        ):
            self._last[track_id] = _Seen(now_s, width, score)
            return True
        return False

    def end(self, track_ids: list[int] | tuple[int, ...]) -> None:
        for track_id in track_ids:
            self._last.pop(track_id, None)

    def clear(self) -> None:
        self._last.clear()
        self._full_pass_at = None
