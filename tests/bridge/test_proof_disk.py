"""Proof: with retention "none", a full session leaves no audio or transcript on disk.

The bridge runs in its own mount namespace (`unshare -m`) in which /tmp, /var/tmp and
/dev/shm are bind mounts of folders this test owns, and HOME, TMPDIR, the XDG folders, the
working directory and `--data-dir` all point inside that /tmp. Its stdout and stderr (what a
service manager would write to the journal) go to a file the test owns too. So every place
the bridge writes by default is a folder the test can list, and nothing else on the machine
(other tests, other users of /tmp) can confuse the result.

Every file is listed before the bridge starts and after it has served a full session and
shut down: speech in over Hearth (wake event), Hermes (audio frames are WAV files) and a
continuous stream with the bridge's wake word, plus a spoken answer. No new or modified file
may contain the transcripts' words, any 2 KB of the session's audio, or a WAV (RIFF) header.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.tools.satellite import SatelliteOptions, load_wav_pcm16k, run_satellite
from tests.support.bridge_proc import ROOT, BridgeProcess, Probe
from tests.support.broker import Mosquitto

BLOCK = 2048
COMMANDS = {  # satellite -> (protocol, wake, spoken text, expected transcript)
    "disk-hearth": ("hearth", "event", "turn on the kitchen light", "turn on the kitchen light"),
    "disk-hermes": ("hermes", "event", "turn off the bedroom light", "turn off the bedroom light"),
    "disk-stream": ("hearth", "bridge", "okay nabu, turn on the kitchen light", "turn on the kitchen light"),
}
ANSWER = "The kitchen light is on"
PRIVATE_DIRS = {"sys-tmp": "/tmp", "sys-vartmp": "/var/tmp", "sys-shm": "/dev/shm"}
IN_TMP = ("home", "tmpdir", "xdg-data", "xdg-cache", "xdg-config", "xdg-state", "xdg-runtime", "data", "cwd")

Snapshot = dict[str, tuple[int, int, int]]


def snapshot(root: Path) -> Snapshot:
    """relative path -> (size, mtime_ns, inode) of every regular file under root."""
    files: Snapshot = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            info = path.lstat()
            files[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return files


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    return sorted(p for p, meta in after.items() if before.get(p) != meta)


def audio_blocks(pcm: bytes) -> list[bytes]:
    """Aligned 2 KB blocks of real sound: any run of 4 KB or more of the audio, at any offset,
    contains one whole block. Near-silent blocks are left out (they match any zero-filled file)."""
    blocks = (pcm[i : i + BLOCK] for i in range(0, len(pcm) - BLOCK + 1, BLOCK))
    return [b for b in blocks if len(set(b)) >= 64]


def words_pattern(text: str) -> re.Pattern[bytes]:
    """The transcript's words in order, any separators, any case, UTF-8 or UTF-16."""
    words = text.split()
    utf8 = rb"[\W_]{1,3}".join(re.escape(w.encode()) for w in words)
    utf16 = rb"(?:[\W_]\x00){1,3}".join(re.escape(w.encode("utf-16-le")) for w in words)
    return re.compile(b"(?:" + utf8 + b")|(?:" + utf16 + b")", re.IGNORECASE)


@dataclass
class Finding:
    path: str
    what: list[str] = field(default_factory=list)


def scan(root: Path, paths: list[str], texts: list[str], pcm_blocks: list[bytes]) -> list[Finding]:
    patterns = {text: words_pattern(text) for text in texts}
    findings = []
    for rel in paths:
        path = root / rel
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        what = [f"transcript {text!r}" for text, pattern in patterns.items() if pattern.search(data)]
        hits = sum(1 for block in pcm_blocks if block in data)
        if hits:
            what.append(f"{hits} x 2 KB of the session's audio")
        if re.search(rb"RIFF.{4}WAVE", data, re.DOTALL) or path.suffix.lower() in (".wav", ".wave", ".pcm", ".raw"):
            what.append("a WAV file")
        if what:
            findings.append(Finding(rel, what))
    return findings


class NamespacedBridge(BridgeProcess):
    """The bridge in a private mount namespace: /tmp, /var/tmp, /dev/shm are the test's folders."""

    def __init__(self, broker: Mosquitto, root: Path) -> None:
        super().__init__(broker.host, broker.port, Path("/tmp/data"))
        self.root = root
        self.log_path = root / "journal" / "bridge.log"

    def _keep_visible(self) -> list[str]:
        """The code and the virtual environment may themselves live under /tmp (a CI checkout):
        bind them into the test's folder at the same place first, so they stay visible."""
        keep = []
        for path in {ROOT.resolve(), Path(sys.prefix).resolve()}:
            for name, target in PRIVATE_DIRS.items():
                if path.is_relative_to(target) and not any(path.is_relative_to(k) for k, _ in keep):
                    keep.append((path, self.root / name / path.relative_to(target)))
        return [f'mkdir -p "{inside}"; mount --bind "{path}" "{inside}"' for path, inside in keep]

    @property
    def command(self) -> list[str]:
        # /tmp last: the test's folders live under the host's /tmp, which that mount hides.
        # --rbind carries the kept code/venv mounts along.
        mounts = "; ".join([*self._keep_visible(), *(f'mount --rbind "${i + 1}" {target}' for i, target in
                                                     reversed(list(enumerate(PRIVATE_DIRS.values()))))])
        script = (f"set -e; {mounts}; shift {len(PRIVATE_DIRS)}; cd /tmp/cwd; touch /tmp/.mounted /var/tmp/.mounted "
                  f"/dev/shm/.mounted; exec \"$@\"")
        return [shutil.which("unshare") or "unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "sh",
                *(str(self.root / d) for d in PRIVATE_DIRS), *super().command]

    def start(self, wait: bool = True) -> NamespacedBridge:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "TMP", "TEMP"))}
        env.update({"PYTHONPATH": str(ROOT), "HOME": "/tmp/home", "TMPDIR": "/tmp/tmpdir",
                    "XDG_DATA_HOME": "/tmp/xdg-data", "XDG_CACHE_HOME": "/tmp/xdg-cache",
                    "XDG_CONFIG_HOME": "/tmp/xdg-config", "XDG_STATE_HOME": "/tmp/xdg-state",
                    "XDG_RUNTIME_DIR": "/tmp/xdg-runtime"})
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        if wait:
            self.wait_online()
        return self


@dataclass
class DiskSession:
    root: Path
    before: Snapshot
    after: Snapshot
    results: dict[str, dict[str, Any]]
    policy: dict[str, Any]
    played: int
    pcm: dict[str, bytes]


@pytest.fixture(scope="module")
def disk_session(tmp_path_factory: pytest.TempPathFactory, say: Any) -> Iterator[DiskSession]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("proof 2 runs the bridge in a private mount namespace (`unshare -m`), which needs root and "
                    "util-linux; CI runs as root")
    root = tmp_path_factory.mktemp("disk")
    for d in (*PRIVATE_DIRS, "journal"):
        (root / d).mkdir()
        (root / d).chmod(0o1777)
    for d in IN_TMP:
        (root / "sys-tmp" / d).mkdir(mode=0o700)
    pcm = {sat: load_wav_pcm16k(say(spoken, speed=150 if wake == "bridge" else 160))
           for sat, (_p, wake, spoken, _t) in COMMANDS.items()}
    broker = Mosquitto().start()
    bridge = NamespacedBridge(broker, root)
    before = snapshot(root)
    try:
        bridge.start()
        for d in PRIVATE_DIRS:  # the bridge's /tmp, /var/tmp and /dev/shm really are the test's folders
            assert (root / d / ".mounted").exists(), f"{d} was not mounted:\n{bridge.log()}"

        async def run() -> tuple[dict[str, dict[str, Any]], dict[str, Any], int]:
            async with Probe(broker.host, broker.port, ["hearth/bridge/policy/state", "hearth/satellite/+/play"]) as probe:
                policy = await probe.wait_for("policy/state")
                results = {}
                for sat, (protocol, wake, _spoken, _text) in COMMANDS.items():
                    options = SatelliteOptions(sat_id=sat, host=broker.host, port=broker.port, protocol=protocol,
                                               wake=wake, timeout=20)
                    results[sat] = await run_satellite(options, pcm[sat])
                await probe.client.publish("hearth/satellite/disk-hearth/response", json.dumps(
                    {"session_id": results["disk-hearth"]["session_id"], "text": ANSWER}))
                for _ in range(100):
                    if any(t.endswith("/play") for t, _p in probe.messages):
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)
                played = sum(1 for t, _p in probe.messages if t.endswith("/play"))
                return results, policy, played

        results, policy, played = asyncio.run(run())
        bridge.stop(signal.SIGTERM)  # a clean shutdown: whatever it saves on the way out is checked too
        after = snapshot(root)
        yield DiskSession(root, before, after, results, policy, played, pcm)
    finally:
        bridge.stop(signal.SIGKILL)
        broker.close()


def test_the_session_was_real(disk_session: DiskSession) -> None:
    assert disk_session.policy["retention"] == "none"
    for sat, (_p, _w, _s, text) in COMMANDS.items():
        assert disk_session.results[sat]["transcript"] == text, (sat, disk_session.results[sat])
    assert disk_session.played > 0, "the answer was not spoken"
    # The bridge did write where the test looks (so the scan below is not of empty folders).
    new = changed(disk_session.before, disk_session.after)
    assert "sys-tmp/data/policy.json" in new or "sys-tmp/data/audit-counters.json" in new, new
    assert "journal/bridge.log" in new, new


def test_no_file_holds_audio_or_transcript_after_a_session(disk_session: DiskSession) -> None:
    new = changed(disk_session.before, disk_session.after)
    texts = sorted({t for *_r, t in COMMANDS.values()} | {ANSWER})
    blocks = [b for pcm in disk_session.pcm.values() for b in audio_blocks(pcm)]
    assert len(blocks) > 50
    findings = scan(disk_session.root, new, texts, blocks)
    assert not findings, "files written during the session hold private content:\n" + "\n".join(
        f"  {f.path}: {', '.join(f.what)}" for f in findings)


def test_the_scan_finds_planted_audio_and_text(tmp_path: Path, say: Any) -> None:
    """The scanner is not blind: a transcript in a log line, a raw slice of audio at an odd
    offset, and a WAV file are each found."""
    pcm = load_wav_pcm16k(say("turn on the kitchen light"))
    middle = len(pcm) // 2 + 1001  # in the speech, not in the padding; not block-aligned
    before = snapshot(tmp_path)
    (tmp_path / "log.txt").write_bytes(b"INFO bridge: kitchen: 'Turn on the kitchen light' (HassTurnOn)\n")
    (tmp_path / "cache.bin").write_bytes(b"\x01" * 7 + pcm[middle : middle + 4100] + b"\x02" * 5)
    (tmp_path / "x.dat").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    (tmp_path / "utf16.txt").write_bytes("turn on the kitchen light".encode("utf-16-le"))
    (tmp_path / "clean.txt").write_bytes(b"kitchen light\n" + bytes(8192))
    findings = {f.path: f.what for f in scan(tmp_path, changed(before, snapshot(tmp_path)),
                                             ["turn on the kitchen light"], audio_blocks(pcm))}
    assert set(findings) == {"log.txt", "cache.bin", "x.dat", "utf16.txt"}, findings
