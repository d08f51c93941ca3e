"""The satellite as its own distribution (satellite/pyproject.toml) on the oldest Python it
claims, 3.11 (Raspberry Pi OS bookworm's): installed into a fresh venv without the bridge or any
of its dependencies, then run for real against Mosquitto; and the shipped systemd units.

Python 3.11 comes from pyenv or the system (`python3.11`); without one the 3.11 test is skipped
with the reason (CI's machine has pyenv's 3.11). Adds about 15-25 s (the venv and the install,
from pip's cache)."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bridge_proc import wait_for_retained
from tests.support.broker import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "examples/systemd"
#: the bridge's own dependencies, none of which a satellite may pull in
BRIDGE_ONLY = {"pocketsphinx", "hassil", "home-assistant-intents", "wyoming", "aiohttp", "pymicro-vad",
               "voluptuous", "prometheus-client", "hearth-bridge"}


#: the venv's programs see only the venv (not this checkout through PYTHONPATH)
CLEAN_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


def python311() -> str | None:
    candidates = [shutil.which("python3.11"), *sorted(Path("/root/.pyenv/versions").glob("3.11*/bin/python3.11")),
                  *sorted(Path(os.path.expanduser("~/.pyenv/versions")).glob("3.11*/bin/python3.11"))]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


@pytest.fixture(scope="module")
def venv311(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    python = python311()
    if python is None:
        pytest.skip("no Python 3.11 on this machine (pyenv or python3.11): the satellite's oldest Python")
    venv = tmp_path_factory.mktemp("sat311") / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    # what docs/satellite.md says: pip install ~/hearth/satellite
    result = subprocess.run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check",
                             str(ROOT / "satellite")], capture_output=True, text=True, timeout=600, check=False,
                            env=CLEAN_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    yield venv


def test_pyproject_claims_what_is_tested() -> None:
    project = tomllib.loads((ROOT / "satellite/pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert not {dep.split(">")[0].split("=")[0].split("<")[0] for dep in project["dependencies"]} & BRIDGE_ONLY
    assert project["scripts"] == {"hearth-satellite": "hearth_satellite.cli:main"}
    import hearth_satellite
    assert project["version"] == hearth_satellite.__version__
    # one source: the distribution's package is the repository's hearth_satellite/
    assert (ROOT / "satellite/hearth_satellite").resolve() == (ROOT / "hearth_satellite").resolve()


def test_installs_on_python_311_without_the_bridge(venv311: Path) -> None:
    listed = subprocess.run([str(venv311 / "bin/pip"), "list", "--format=freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True, env=CLEAN_ENV).stdout.lower()
    installed = {line.split("==")[0] for line in listed.split()}
    assert "hearth-satellite" in installed and "pymicro-wakeword" in installed
    assert not installed & BRIDGE_ONLY, installed & BRIDGE_ONLY
    version = subprocess.run([str(venv311 / "bin/python"), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True, env=CLEAN_ENV).stdout.strip()
    assert version == "(3, 11)"
    help_text = subprocess.run([str(venv311 / "bin/hearth-satellite"), "--help"], capture_output=True, text=True,
                               check=True, timeout=60, env=CLEAN_ENV).stdout
    assert "--mic-command" in help_text and "--prefix" in help_text


def test_runs_on_python_311_against_mosquitto(venv311: Path, tmp_path: Path) -> None:
    """A short real run: it loads the wake word model, reads the microphone command, announces
    itself online on the broker, and goes offline when stopped."""
    broker = Mosquitto().start()
    log = tmp_path / "satellite.log"
    silence = f"{sys.executable} -c \"import sys, time\nwhile True: sys.stdout.buffer.write(bytes(960)); sys.stdout.flush(); time.sleep(0.03)\""
    with log.open("wb") as out:
        proc = subprocess.Popen([str(venv311 / "bin/hearth-satellite"), "--id", "py311", "--host", broker.host,
                                 "--port", str(broker.port), "--mic-command", silence, "--snd-command", "cat",
                                 "--prefix", "sat311"], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                                env=CLEAN_ENV)
    try:
        status = wait_for_retained(broker.host, broker.port, "sat311/satellite/py311/status",
                                   lambda d: d.get("state") == "online", timeout=60)
        assert status.get("wake_word") == "okay_nabu", status
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text(errors="replace")
        wait_for_retained(broker.host, broker.port, "sat311/satellite/py311/status",
                          lambda d: d.get("state") == "offline", timeout=20)
    except Exception:
        print(log.read_text(errors="replace")[-3000:])
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.close()


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text().replace("\\\n", " "))
    return parser


def test_system_unit_runs_as_a_dedicated_user_and_verifies(venv311: Path, tmp_path: Path) -> None:
    system = unit("hearth-satellite.service")
    service = system["Service"]
    assert service.get("DynamicUser") == "yes" and "User" not in service  # no `pi` on current Pi OS
    assert service["SupplementaryGroups"] == "audio"
    assert system["Install"]["WantedBy"] == "multi-user.target"
    assert "/run/hearth-satellite/muted" in service["ExecStart"] and service["RuntimeDirectory"] == "hearth-satellite"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing (scripts/test installs systemd)")
    # verify with the program really installed (verify checks that ExecStart's program exists)
    text = (UNITS / "hearth-satellite.service").read_text()
    installed = tmp_path / "hearth-satellite.service"
    installed.write_text(text.replace("/opt/hearth-satellite/bin/hearth-satellite",
                                      str(venv311 / "bin/hearth-satellite")))
    result = subprocess.run([analyze, "verify", str(installed)], capture_output=True, text=True, timeout=60,
                            check=False)
    # verify exits 0 on settings it cannot parse but says so: no line about this unit either
    assert result.returncode == 0 and str(installed) not in result.stderr, result.stderr
    # and the check above can fail: a setting verify cannot parse, a program that is not there
    broken = tmp_path / "broken.service"
    broken.write_text(installed.read_text().replace("Type=simple", "Type=sometimes"))
    assert str(broken) in subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True,
                                         timeout=60, check=False).stderr
    broken.write_text(text)  # /opt/hearth-satellite is not installed here
    assert subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=60,
                          check=False).returncode != 0


def test_user_unit_is_for_a_user_manager() -> None:
    user = unit("hearth-satellite-user.service")
    # a user manager has no multi-user.target, and its runtime directory is $XDG_RUNTIME_DIR
    assert user["Install"]["WantedBy"] == "default.target"
    assert "User" not in user["Service"] and "DynamicUser" not in user["Service"]
    assert "%t/hearth-satellite/muted" in user["Service"]["ExecStart"]
    for name in ("hearth-satellite.service", "hearth-satellite-user.service"):
        assert "--kill-whom=main" in (UNITS / name).read_text()
