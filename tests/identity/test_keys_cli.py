"""``edge-agent keys``: the commands write the documented layouts and refuse what they should."""

from __future__ import annotations

import stat

from edge_agent.cli.main import main
from edge_agent.identity.registry import DeviceRegistry


def test_keys_commands(tmp_path, capsys):
    assert main(["keys", "init-authority", str(tmp_path / "auth")]) == 0
    assert main(["keys", "init-control-room", str(tmp_path / "cr")]) == 0
    assert main(["keys", "init-device", "--id", "cam-01", str(tmp_path / "d1"), "--registry", str(tmp_path / "reg.json")]) == 0
    assert main(["keys", "init-device", "--id", "cam-02", str(tmp_path / "d2"), "--registry", str(tmp_path / "reg.json")]) == 0
    assert sorted(DeviceRegistry.load(tmp_path / "reg.json").devices) == ["cam-01", "cam-02"]
    for key in (tmp_path / "auth" / "authority_ed25519.key", tmp_path / "cr" / "control_room_x25519.key", tmp_path / "d1" / "device_x25519.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    capsys.readouterr()
    # a duplicate id is refused before any key is created
    assert main(["keys", "init-device", "--id", "cam-01", str(tmp_path / "d3"), "--registry", str(tmp_path / "reg.json")]) == 2
    assert "already in" in capsys.readouterr().err and not (tmp_path / "d3").exists()
    assert main(["keys", "init-control-room", str(tmp_path / "cr")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["keys", "init-device", "--id", "bad/id", str(tmp_path / "d4")]) == 2
