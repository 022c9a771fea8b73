"""Frame pacing: fewer frames while nobody is in view or the SoC is hot; every frame when a face is."""

from __future__ import annotations

from edge_agent.agent.pacing import HOT_HYSTERESIS_C, TEMPERATURE_EVERY_S, FramePacer, PacingPolicy

POLICY = PacingPolicy(idle_fps=5.0, idle_after_s=2.0, hot_temperature_c=75.0, hot_fps=2.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(pacer: FramePacer, clock: Clock, seconds: float, fps: float, faces_in_view: bool) -> int:
    """Feed ``seconds`` of camera frames at ``fps``; returns how many the pacer let through."""
    processed = 0
    for _ in range(round(seconds * fps)):
        clock.now += 1.0 / fps
        if pacer.should_process():
            processed += 1
            pacer.observed(1 if faces_in_view else 0)
    return processed


def test_every_frame_while_faces_are_in_view_and_idle_rate_once_they_are_gone():
    clock = Clock()
    pacer = FramePacer(POLICY, clock)
    assert _run(pacer, clock, 4.0, 30.0, faces_in_view=True) == 120
    assert pacer.state == "active"
    # no faces: still every frame for idle_after_s, then 5 fps
    assert _run(pacer, clock, 2.1, 30.0, faces_in_view=False) >= 60
    assert pacer.state == "idle"
    assert 49 <= _run(pacer, clock, 10.0, 30.0, faces_in_view=False) <= 51
    assert pacer.skipped > 200


def test_a_face_ends_idling_at_the_next_processed_frame():
    clock = Clock()
    pacer = FramePacer(POLICY, clock)
    _run(pacer, clock, 5.0, 30.0, faces_in_view=False)
    assert pacer.state == "idle"
    # A face steps into view: within one idle interval (0.2 s = 6 frames at 30 fps) a frame is processed.
    for _ in range(6):
        clock.now += 1 / 30
        if pacer.should_process():
            break
    else:
        raise AssertionError("no frame processed within 0.2 s of idling")
    pacer.observed(1)
    assert pacer.state == "active"
    assert _run(pacer, clock, 1.0, 30.0, faces_in_view=True) == 30


def test_hot_soc_caps_the_rate_until_it_has_cooled_by_the_hysteresis():
    clock = Clock()
    readings = iter([80.0] * 3 + [POLICY.hot_temperature_c - 1] * 3 + [POLICY.hot_temperature_c - HOT_HYSTERESIS_C - 1] * 100)
    pacer = FramePacer(POLICY, clock, temperature=lambda: next(readings))
    hot = _run(pacer, clock, 3 * TEMPERATURE_EVERY_S, 30.0, faces_in_view=True)
    assert pacer.state == "hot"
    assert hot <= 3 * TEMPERATURE_EVERY_S * POLICY.hot_fps + 1
    _run(pacer, clock, 3 * TEMPERATURE_EVERY_S, 30.0, faces_in_view=True)
    assert pacer.state == "hot", "a degree under the limit is not cool enough yet"
    _run(pacer, clock, TEMPERATURE_EVERY_S + 0.1, 30.0, faces_in_view=True)
    assert pacer.state == "active"


def test_no_temperature_reading_and_pacing_off():
    clock = Clock()
    pacer = FramePacer(POLICY, clock, temperature=lambda: None)
    assert _run(pacer, clock, 1.0, 30.0, faces_in_view=True) == 30
    off = FramePacer(PacingPolicy(idle_fps=0.0, idle_after_s=2.0, hot_temperature_c=75.0, hot_fps=0.0), clock, temperature=lambda: 99.0)
    assert not off.policy.enabled
    assert _run(off, clock, 10.0, 30.0, faces_in_view=False) == 300
    assert off.state == "active" and off.skipped == 0
