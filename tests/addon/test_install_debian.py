"""The add-on image's install path, proven without its base image: scripts/install-bridge.sh (what
hearth/Dockerfile runs) in a fresh Debian trixie root made by debootstrap, then the bridge
installed there started against a real Mosquitto.

The base image (Home Assistant's debian:trixie) cannot be pulled here; a minimal trixie root is
the same starting point for what the recipe needs: it installs Python 3.13, the compilers and
espeak-ng from Debian itself, the packages from PyPI, and builds the patched pocketsphinx.

Slow: marked `slow`, run by scripts/test only with HEARTH_SLOW=1. Measured here (2 shared cores):
4 min 23 s with the caches below warm (install 251 s, most of it compiling pocketsphinx; the
installed bridge online 3.7 s after it starts); a cold first run adds debootstrap (67 s) and the
Debian and PyPI downloads, about 10-15 minutes in all on a busy machine. Measured again with
the source from scripts/addon-source (the image's build context) and pocketsphinx's build tools
as wheels, on a cold cache at load average 7: debootstrap 70 s, install 259 s, online 4.9 s
(5 min 56 s in all). The debootstrap root is cached in
/var/cache/hearth/debian-trixie-minbase (HEARTH_DEBIAN_ROOT to move it), and the Debian and pip
download caches beside it, so a rerun spends its time installing and compiling only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bridge_proc import wait_for_retained
from tests.support.broker import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("HEARTH_DEBIAN_ROOT", "/var/cache/hearth/debian-trixie-minbase"))
SUITE = "trixie"  # Home Assistant's Debian base images are trixie; Python 3.13 is Debian's there
VENV = "/opt/hearth"  # as in hearth/Dockerfile and the add-on's run script
#: the command hearth/Dockerfile runs (tests/addon/test_addon_config.py checks they agree)
INSTALL = ["/usr/src/hearth/scripts/install-bridge.sh", VENV]
#: what the installed Python says about itself (the add-on's start module must import too)
PROBE = ("import sys, importlib.metadata as m, bridge.addon; print(sys.executable, sys.version_info[:2],"
         " m.version('pocketsphinx'), m.version('hearth-bridge'))")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot need root"),
]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb.debian.org if none is found)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+/debian)/?\s", text, re.MULTILINE):
            return match.group(1)
    return "http://deb.debian.org/debian"


def base_root() -> Path:
    """A minimal Debian root, made once by debootstrap and kept in the cache."""
    if (CACHE / "usr/bin/apt-get").exists():
        return CACHE
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is missing (scripts/test installs it)")
    partial = CACHE.with_name(CACHE.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(partial), debian_mirror()],
                   check=True, capture_output=True, timeout=1800)
    partial.rename(CACHE)
    return CACHE


def chroot_command(root: Path, argv: list[str], env: dict[str, str]) -> list[str]:
    """`argv` run inside `root` in a mount namespace of its own (/dev, /proc and the download
    caches mounted there vanish with it). The network is this machine's: loopback reaches the
    test's broker, and the package registries answer as they do here."""
    caches = CACHE.parent
    mounts = [
        f"mount --rbind /dev {root}/dev",
        f"mount -t proc proc {root}/proc",
        f"mkdir -p {caches}/apt-archives/partial {caches}/pip {root}/root/.cache/pip",
        f"mount --bind {caches}/apt-archives {root}/var/cache/apt/archives",
        f"mount --bind {caches}/pip {root}/root/.cache/pip",
    ]
    inner = ["chroot", str(root), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
    script = " && ".join(mounts) + " && exec " + shlex.join(inner)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], dict[str, float]]]:
    timings: dict[str, float] = {}
    start = time.monotonic()
    base = base_root()
    timings["debootstrap_or_cache"] = time.monotonic() - start

    start = time.monotonic()
    root = tmp_path_factory.mktemp("debian") / "root"
    subprocess.run(["cp", "-a", "--reflink=auto", str(base), str(root)], check=True)
    # the source as the image gets it: what scripts/addon-source copies (the tracked files the
    # Dockerfile's build context lets in; test_addon_image.py checks the two agree)
    subprocess.run([str(ROOT / "scripts/addon-source"), str(root / "usr/src/hearth")], check=True,
                   capture_output=True, timeout=120)
    shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
    # This machine reaches the registries through its own certificate authorities; a container
    # build reaches them directly. The recipe is the same either way.
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    host_ca = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    if host_ca.is_file():
        shutil.copy2(host_ca, root / "etc/hearth-host-ca.crt")
        env["PIP_CERT"] = "/etc/hearth-host-ca.crt"
    timings["copy_root"] = time.monotonic() - start

    start = time.monotonic()
    log = root.parent / "install.log"
    with log.open("wb") as out:
        result = subprocess.run(
            chroot_command(root, ["bash", *INSTALL], env),
            check=False, stdout=out, stderr=subprocess.STDOUT, timeout=3000)
    timings["install_bridge"] = time.monotonic() - start
    assert result.returncode == 0, f"install-bridge.sh failed:\n{log.read_text(errors='replace')[-6000:]}"
    yield root, env, timings
    print("\ntimings (s):", json.dumps({k: round(v, 1) for k, v in timings.items()}))
    shutil.rmtree(root.parent, ignore_errors=True)


def test_recipe_installs_the_patched_bridge_with_debian_python(installed: tuple[Path, dict[str, str], dict[str, float]]) -> None:
    root, env, _timings = installed
    out = subprocess.run(
        chroot_command(root, [f"{VENV}/bin/python", "-c", PROBE], env),
        check=True, capture_output=True, text=True, timeout=120).stdout.split()
    assert out[0] == f"{VENV}/bin/python"
    assert out[1:3] == ["(3,", "13)"], out
    assert "+hearth." in out[3], f"pocketsphinx {out[3]} is not the patched build"
    # the bridge is installed, not linked to the source (the image deletes its source)
    shutil.rmtree(root / "usr/src/hearth")
    assert subprocess.run(chroot_command(root, [f"{VENV}/bin/hearth-bridge", "--version"], env),
                          check=False, capture_output=True, text=True, timeout=120).stdout.strip() == out[4]
    assert (root / "usr/bin/espeak-ng").exists(), "espeak-ng (spoken answers) was not installed"


def test_installed_bridge_comes_online(installed: tuple[Path, dict[str, str], dict[str, float]]) -> None:
    root, env, timings = installed
    broker = Mosquitto().start()
    start = time.monotonic()
    log = root.parent / "bridge.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            chroot_command(root, [f"{VENV}/bin/hearth-bridge", "run", "--mqtt-host", broker.host,
                                  "--mqtt-port", str(broker.port), "--data-dir", "/var/lib/hearth",
                                  "--status-port", "0", "--prefix", "debiantest"], env),
            stdout=out, stderr=subprocess.STDOUT)
    try:
        status = wait_for_retained(broker.host, broker.port, "debiantest/bridge/status",
                                   lambda d: d.get("state") == "online", timeout=180)
        timings["bridge_online"] = time.monotonic() - start
        assert "+hearth." in status["engines"]["stt"]["pocketsphinx"], status
        assert status["prefix"] == "debiantest"
        assert (root / "var/lib/hearth/policy.json").exists()
    except Exception:
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        broker.close()
    assert proc.returncode == 0, log.read_text(errors="replace")[-4000:]
