"""The demo checks "non-matching faces left no trace" instead of claiming it (issue 10.19), and
the check can fail: a planted template or image is found (positive control)."""

from __future__ import annotations

import io

import numpy as np

from edge_agent.demo.live import DETECTOR, run_demo
from edge_agent.demo.trace_check import check_no_trace, non_matching_templates, template_needles
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.image_io import read_image


def test_the_demo_searches_the_work_folder_spool_and_broker_and_finds_nothing(tmp_path, require_mosquitto, fixtures_dir):
    out = io.StringIO()
    result = run_demo(tmp_path, out, use_broker=True)
    trace = result.trace
    assert trace is not None and trace.clean, trace.findings
    assert trace.files > 10 and trace.broker_messages >= 2 and trace.non_matching_faces >= 1
    assert "Non-matching faces left no trace: checked" in out.getvalue()
    assert f"{trace.broker_messages} messages the broker carried" in out.getvalue()

    # Positive control: the same search over the same folder catches a leaked template and a crop.
    core = RecognitionCore.load(detector=DETECTOR)
    refs = [core.faces(read_image(fixtures_dir / "faces" / "obama_1.jpg"))[0].embedding]
    templates = non_matching_templates(core, tmp_path / "walk-past.avi", refs, 0.55)
    assert templates, "the walkers not on this reference are non-matches"
    leak = tmp_path / "state" / "debug.bin"
    leak.write_bytes(b"hdr" + np.asarray(templates[0], dtype="<f4").tobytes())
    (tmp_path / "control-room" / "face.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    found = check_no_trace(tmp_path, [tmp_path / "walk-past.avi"], template_needles(templates), [], [], len(templates))
    assert not found.clean
    assert any("debug.bin: template bytes" in f for f in found.findings)
    assert any("face.jpg: image data" in f for f in found.findings)
    assert "TRACE FOUND" in found.line()
