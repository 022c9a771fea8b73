"""Device-side CLI commands that need no models: inspect, wipe, enforce-retention."""

from __future__ import annotations

import json

from edge_agent.cli.main import main
from edge_agent.crypto.keyfiles import write_public_key
from edge_agent.watchlist.store import WatchlistStore


def test_inspect_wipe_and_retention(world, capsys):
    data, _ = world.pack(recipients=("cam-01", "cam-02"))
    pkg = world.tmp / "wl.eawl"
    pkg.write_bytes(data)
    write_public_key(world.tmp / "authority.pub", world.authority.public_key())
    capsys.readouterr()
    assert main(["watchlist", "inspect", str(pkg), "--authority-pub", str(world.tmp / "authority.pub")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sealed_for"] == ["cam-01", "cam-02"] and shown["signature"] == "valid" and shown["entry_count"] == 5
    assert "templates" not in json.dumps(shown).replace("template_count", "")  # header only, nothing biometric
    bad = bytearray(data)
    bad[-1] ^= 1
    pkg.write_bytes(bytes(bad))
    assert main(["watchlist", "inspect", str(pkg), "--authority-pub", str(world.tmp / "authority.pub")]) == 2

    state = world.tmp / "state"
    WatchlistStore(state / "watchlist").install(data)
    dev = ["--state-dir", str(state), "--device-keys", str(world.tmp / "keys" / "cam-01")]
    assert main(["watchlist", "wipe", *dev, "--actor", "operator:pc99"]) == 0
    assert not WatchlistStore(state / "watchlist").exists()
    capsys.readouterr()
    assert main(["watchlist", "enforce-retention", *dev]) == 0  # nothing left to destroy
    assert "nothing to destroy" in capsys.readouterr().out
    assert "operator:pc99" in (state / "audit.log").read_text()
    assert main(["audit", "verify", str(state / "audit.log"), "--device-pub", str(world.tmp / "keys" / "cam-01")]) == 0
