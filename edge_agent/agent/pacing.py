"""Frame pacing for battery and heat: process fewer frames while nobody is in view or the SoC is hot.

Why: a body-worn camera spends most of a shift pointing at scenes with no face in them, yet the
detector would run on every frame, keeping the CPU busy and draining the battery (hw/README.md:
a busy Pi 5 draws ~4.5 W). After ``idle_after_s`` without a face the agent processes at most
``idle_fps`` frames per second; the first face seen brings it back to every frame at once, so
the cost is at most one idle interval (0.2 s at 5 fps) before a face is first looked at. Near the
firmware's throttling point (80 °C on a Pi) it drops to ``hot_fps`` until the SoC has cooled by
``HOT_HYSTERESIS_C``, rather than letting the firmware halve the clock under a full load.

Frames are skipped, not slept on: a live source hands over only its newest frame, so skipping
one costs nothing and never builds a backlog. Replays of recordings are never paced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

HOT_HYSTERESIS_C = 5.0
TEMPERATURE_EVERY_S = 5.0
FRAME_SLACK = 0.95


@dataclass(frozen=True)
class PacingPolicy:
    idle_fps: float  # 0 turns idle pacing off
    idle_after_s: float
    hot_temperature_c: float
    hot_fps: float  # 0 turns thermal pacing off

    @property
    def enabled(self) -> bool:
        return self.idle_fps > 0 or self.hot_fps > 0


class FramePacer:
    """Decides, frame by frame, whether the pipeline should look at the frame just captured."""

    def __init__(
        self,
        policy: PacingPolicy,
        clock: Callable[[], float] = time.monotonic,
        temperature: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._temperature = temperature
        self._last_face = clock()
        self._last_processed: float | None = None
        self._next_temperature_check = clock()
        self._hot = False
        self.skipped = 0

    @property
    def state(self) -> str:
        """``hot``, ``idle`` or ``active``: what the agent is doing, for telemetry and logs."""
        return "hot" if self._hot else "idle" if self._idle(self._clock()) else "active"

    def should_process(self) -> bool:
        now = self._clock()
        self._check_temperature(now)
        limit = self._fps_limit(now)
        # 5 % slack: camera frames arrive with jitter, and a frame a hair early should not be skipped
        # (at 30 fps that would turn 5 fps into 4.3).
        if limit and self._last_processed is not None and now - self._last_processed < FRAME_SLACK / limit:
            self.skipped += 1
            return False
        self._last_processed = now
        return True

    def observed(self, faces: int) -> None:
        """Called after a processed frame with the number of faces it held."""
        if faces:
            self._last_face = self._clock()

    def _idle(self, now: float) -> bool:
        return self.policy.idle_fps > 0 and now - self._last_face >= self.policy.idle_after_s

    def _fps_limit(self, now: float) -> float:
        """The lowest applicable rate (0: no limit, process every frame)."""
        limits = [self.policy.hot_fps] if self._hot else []
        if self._idle(now):
            limits.append(self.policy.idle_fps)
        return min(limits, default=0.0)

    def _check_temperature(self, now: float) -> None:
        if self.policy.hot_fps <= 0 or now < self._next_temperature_check:
            return
        self._next_temperature_check = now + TEMPERATURE_EVERY_S
        reading = self._temperature()
        if reading is None:
            return
        if reading >= self.policy.hot_temperature_c:
            self._hot = True
        elif reading < self.policy.hot_temperature_c - HOT_HYSTERESIS_C:
            self._hot = False
