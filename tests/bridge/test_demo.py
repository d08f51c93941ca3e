"""`hearth-bridge demo` with no broker and no espeak-ng: embedded broker, shipped recordings."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.broker import free_port


def test_demo_without_broker_or_espeak(tmp_path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # neither espeak-ng nor mosquitto can be found
    proc = subprocess.run([sys.executable, "-m", "bridge", "demo", "--mqtt-port", str(free_port())],
                          capture_output=True, text=True, timeout=240, env=env)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "started an embedded one" in out
    assert "using the recordings shipped with the bridge" in out
    rows = [line for line in out.splitlines() if line.startswith(("turn ", "what ", "okay "))]
    assert len(rows) == 4
    for row in rows:
        said = row[:42].strip().split(", ", 1)[-1]
        heard = row[43:79].strip()
        assert heard == said, row
        assert row.rstrip().endswith("ms")
