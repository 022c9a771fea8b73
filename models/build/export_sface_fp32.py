"""Write the cleaned fp32 SFace ONNX (edge_agent.vision.peer.clean_sface_onnx) for the TF build step.

Why: the TensorFlow venv must not import the project; it reads this file instead, so both
the reference and the int8 conversion start from exactly the same fp32 graph.
Run (project venv): python models/build/export_sface_fp32.py  -> models/build/work/sface_fp32.onnx
"""

from __future__ import annotations

from common import SFACE_SOURCE, WORK_DIR, source_path
from edge_agent.vision.peer import clean_sface_onnx


def main() -> int:
    model = clean_sface_onnx(source_path(SFACE_SOURCE).read_bytes())
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    out = WORK_DIR / "sface_fp32.onnx"
    out.write_bytes(model.SerializeToString())
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
