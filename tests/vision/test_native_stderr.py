"""LiteRT's start-up banner stays out of stderr; anything else the runtime prints still reaches it.

The banner is printed once per process, so each case runs in a fresh interpreter process.
"""

from __future__ import annotations

import subprocess
import sys

from edge_agent.vision.model_files import ModelManifest, default_models_dir

BANNER = "Created TensorFlow Lite XNNPACK delegate"


def _stderr_of(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return done.stderr


def _model_path() -> str:
    return str(ModelManifest(default_models_dir()).resolve("sface_int8").path)


def test_the_bare_runtime_prints_the_banner():
    """Control: without our wrapper the banner does appear, so the next test can fail."""
    code = f"from ai_edge_litert.interpreter import Interpreter\nInterpreter(model_path={_model_path()!r}).allocate_tensors()"
    assert BANNER in _stderr_of(code)


def test_our_runtime_wrapper_hides_the_banner():
    code = f"from edge_agent.vision.runtime import LiteRTModel\nLiteRTModel({_model_path()!r})"
    assert BANNER not in _stderr_of(code)


def test_other_native_output_during_loading_is_replayed_not_lost():
    code = (
        "import os\n"
        "from edge_agent.vision.native_stderr import without_runtime_banner\n"
        "with without_runtime_banner():\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
        "    os.write(2, b'ERROR: something the runtime really means\\n')\n"
        "os.write(2, b'after\\n')\n"
    )
    err = _stderr_of(code)
    assert BANNER not in err
    assert err.splitlines() == ["ERROR: something the runtime really means", "after"]


def test_an_error_inside_the_block_still_restores_stderr_and_replays():
    code = (
        "import os, sys\n"
        "from edge_agent.vision.native_stderr import without_runtime_banner\n"
        "try:\n"
        "    with without_runtime_banner():\n"
        "        os.write(2, b'native warning\\n')\n"
        "        raise ValueError('bad model')\n"
        "except ValueError:\n"
        "    pass\n"
        "os.write(2, b'still here\\n')\n"
    )
    assert _stderr_of(code).splitlines() == ["native warning", "still here"]
