"""Helpers for the network proofs: run processes with the audit-hook guard, read its logs.

The guard itself is `netguard_site/sitecustomize.py`: putting that folder first on PYTHONPATH
loads it in every Python process started with the environment from :func:`guard_env`,
including the bridge's decoder workers (`python -m bridge.stt.worker`) and its
multiprocessing-spawn compile process, which inherit the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support.bridge_proc import ROOT, BridgeProcess

GUARD_SITE = Path(__file__).resolve().parent / "netguard_site"


def guard_env(log_dir: Path, mode: str = "record") -> dict[str, str]:
    """Environment for a guarded Python process: records (and with mode "raise", refuses)
    every non-loopback connect/send and DNS lookup."""
    assert mode in ("record", "raise")
    return {"PYTHONPATH": f"{GUARD_SITE}{os.pathsep}{ROOT}", "HEARTH_NETGUARD_DIR": str(log_dir),
            "HEARTH_NETGUARD_MODE": mode}


def read_guard_log(log_dir: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(Path(log_dir).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


def started_processes(records: list[dict[str, Any]]) -> dict[int, str]:
    """pid -> command line of every process the guard was loaded in."""
    return {r["pid"]: " ".join(r["argv"]) for r in records if r["event"] == "start"}


def violations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("verdict") == "violation"]


def describe(records: list[dict[str, Any]]) -> str:
    procs = started_processes(records)
    return "\n".join(f"  pid {r['pid']} ({procs.get(r['pid'], '?')[:80]}): {r['event']} {r.get('host')!r}:{r.get('port')}"
                     f" -> {r.get('verdict')}" for r in records if r["event"] != "start")


class GuardedBridgeProcess(BridgeProcess):
    """A BridgeProcess whose environment (including PYTHONPATH) comes from `env` when given."""

    def start(self, wait: bool = True) -> GuardedBridgeProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = {**os.environ, "PYTHONPATH": str(ROOT), **(self.env or {})}
        self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        if wait:
            self.wait_online()
        return self
