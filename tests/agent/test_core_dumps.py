"""Issue 10.4: no core dump of the agent or the control room, ever.

A crash dump would hold frames, templates, the decrypted watchlist and private keys. These tests
crash real processes (SIGABRT) and look for the core file and for a secret planted in memory; the
positive control shows that, without the hardening, this machine does write such a core.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from core_dump_helpers import allow_core_dumps, core_limit

from edge_agent.demo.live import provision_site
from edge_agent.demo.scenes import write_walk_past_video

REPO = Path(__file__).resolve().parents[2]
SECRET = "a-template-that-must-never-reach-disk-7f3a"


def crash(workdir: Path, before_abort: str) -> list[Path]:
    """Run a Python child in ``workdir`` that holds SECRET, runs ``before_abort``, then aborts; return core files."""
    workdir.mkdir()
    code = f"import os\nsecret = bytearray({SECRET!r}.encode()) * 1000\n{before_abort}\nos.abort()\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, preexec_fn=allow_core_dumps,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGABRT, result.stderr
    return sorted(workdir.glob("core*"))


@pytest.fixture
def cores_are_written(tmp_path) -> None:
    """Positive control: an unhardened crash here leaves a core holding the secret."""
    if Path("/proc/sys/kernel/core_pattern").read_text().startswith("|"):
        pytest.skip("core_pattern pipes cores to a handler; this test needs cores written to the working directory")
    cores = crash(tmp_path / "control", "pass")
    if not cores:
        pytest.skip("this machine writes no core files even when allowed, so their absence would prove nothing")
    assert SECRET.encode() in cores[0].read_bytes(), "a core file holds what the process had in memory"


def test_disable_core_dumps_reads_back_both_guards_in_a_fresh_process():
    code = (
        "import ctypes, resource\n"
        "libc = ctypes.CDLL(None)\n"
        "print(resource.getrlimit(resource.RLIMIT_CORE)[0] != 0, libc.prctl(3, 0, 0, 0, 0))\n"
        "from edge_agent.hardening import disable_core_dumps\n"
        "state = disable_core_dumps()\n"
        "print(resource.getrlimit(resource.RLIMIT_CORE), libc.prctl(3, 0, 0, 0, 0))\n"
        "print(state.describe())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], preexec_fn=allow_core_dumps, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            capture_output=True, text=True, timeout=60, check=True)
    before, after, described = result.stdout.splitlines()
    assert before == "True 1", "the child starts dumpable with a non-zero core limit"
    assert after == "(0, 0) 0"
    assert described == "core dumps disabled (RLIMIT_CORE 0/0, dumpable 0)"


def test_a_hardened_process_that_crashes_leaves_no_core(tmp_path, cores_are_written):
    assert crash(tmp_path / "hardened", "from edge_agent.hardening import disable_core_dumps; disable_core_dumps()") == []


def test_non_dumpable_alone_stops_the_core_even_with_the_limit_raised(tmp_path, cores_are_written):
    """PR_SET_DUMPABLE is the guard that also holds for pipe handlers (systemd-coredump), which ignore RLIMIT_CORE."""
    assert crash(tmp_path / "hardened", "from edge_agent.hardening import PR_SET_DUMPABLE, _prctl; _prctl(PR_SET_DUMPABLE, 0)") == []


def test_the_agent_process_disables_core_dumps_at_start_up(tmp_path):
    video = write_walk_past_video(tmp_path / "v.avi", ["obama_2.jpg"], seconds_each=3.0)
    site = provision_site(tmp_path, video, file_mode="live")
    site.config_path.write_text(site.config_path.read_text().replace('level = "WARNING"', 'level = "INFO"'))
    notify = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(notify)
    server.settimeout(60)
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent.cli.main", "run", "--config", str(site.config_path)],
                            env=dict(os.environ, NOTIFY_SOCKET=notify), preexec_fn=allow_core_dumps,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not server.recv(4096).startswith(b"READY=1"):
            pass
        assert core_limit(proc.pid) == ("0", "0")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        server.close()
    assert "core dumps disabled (RLIMIT_CORE 0/0, dumpable 0)" in err


def test_the_launcher_really_raises_the_limit():
    """Guards the agent test above: its child starts with core dumps allowed, so 0 is the agent's doing."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, preexec_fn=allow_core_dumps)
    try:
        assert core_limit(proc.pid) != ("0", "0")
    finally:
        proc.communicate(b"", timeout=10)
