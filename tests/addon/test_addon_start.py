"""The add-on's start script against a temporary /data/options.json and a stand-in of
Supervisor's services API, ending in a real bridge connected to a real Mosquitto with the login
Supervisor handed out (tests/addon/addon_session.py runs it all in a namespace with only
loopback; this test reads its report)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge import addon
from tests.addon import supervisor_rules as rules
from tests.support.broker import free_port

ROOT = Path(__file__).resolve().parents[2]

OPTIONS = {
    "log_level": "info", "wake_word": "hey_jarvis", "silence_tail": 0.4, "complete_tail": 0.15, "vad_tail": 0.8,
    "satellites": [{"id": "kitchen", "area": "kitchen"}, {"id": "pi@bedroom", "wake_word": "alexa", "name": "Bedroom"}],
    "stt_fallback": True, "tts_engine": "espeak", "tts_voice": "en-us",
    "topic_prefix": "addontest", "hermes": True, "wyoming_server": False,
}


def run_session(tmp_path: Path, options: dict[str, Any]) -> dict[str, Any]:
    if shutil.which("unshare") is None or shutil.which("ip") is None or os.geteuid() != 0:
        pytest.fail("the add-on start test runs in a fresh network namespace (`unshare -n`, `ip`): needs root")
    data = tmp_path / "data"
    data.mkdir()
    (data / "options.json").write_text(json.dumps(options))
    out = tmp_path / "report.json"
    subprocess.run(["unshare", "-n", "--", sys.executable, str(ROOT / "tests/addon/addon_session.py"),
                    "--data", str(data), "--out", str(out)], check=True, timeout=180, cwd=ROOT)
    report: dict[str, Any] = json.loads(out.read_text())
    assert "error" not in report, report.get("error", "") + report.get("log_tail", "")
    return report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    schema = yaml.safe_load((ROOT / "hearth/config.yaml").read_text())["schema"]
    options = rules.validate_options(schema, OPTIONS)  # what Supervisor would accept and write
    return run_session(tmp_path_factory.mktemp("addon"), options)


def test_bridge_online_with_supervisors_login(report: dict[str, Any]) -> None:
    assert "exit_before_online" not in report, report["log_tail"]
    status = report["status"]
    assert status["state"] == "online" and status["prefix"] == "addontest"
    assert report["anonymous_refused"], "the broker admitted an anonymous client: the login proved nothing"
    assert report["supervisor_requests"] and all(r["authorization_ok"] for r in report["supervisor_requests"])
    assert report["supervisor_requests"][0]["path"] == "/services/mqtt"
    # the start script became the bridge (exec): s6 supervises the bridge itself
    assert report["process"][0].endswith("hearth-bridge") and report["process"][1:] == ["run", "--config"]


def test_the_pairing_key_is_offered_to_home_assistant(report: dict[str, Any]) -> None:
    """Supervisor's discovery (service `hearth`) carries the key the bridge then verifies with:
    the bridge announces the same key id in its status."""
    (offer,) = [r for r in report["supervisor_requests"] if r["path"] == "/discovery"]
    assert offer["authorization_ok"] and offer["body"]["service"] == "hearth"
    config = offer["body"]["config"]
    assert config["prefix"] == "addontest" and config["bridge_id"] == report["status"]["bridge_id"]
    assert len(config["key"]) == 64 and config["key_id"] == report["status"]["key_id"]
    from bridge.privacy.auth import key_id

    assert key_id(bytes.fromhex(config["key"])) == config["key_id"]


def test_options_reach_the_bridge(report: dict[str, Any]) -> None:
    config = yaml.safe_load(report["config_text"])
    assert config["wake"] == {"model": "hey_jarvis"}
    assert config["endpoint"] == {"silence_tail": 0.4, "complete_tail": 0.15, "vad_tail": 0.8}
    assert config["satellites"] == {"kitchen": {"area": "kitchen"},
                                    "pi@bedroom": {"name": "Bedroom", "wake_word": "alexa"}}
    assert config["tts"] == {"engine": "espeak", "voice": "en-us"}
    # what the running bridge says it does: the options took effect, not only the file
    engines = report["status"]["engines"]
    assert engines["wake"]["default_model"] == "hey_jarvis"
    assert engines["stt"]["name"] == "pocketsphinx"
    assert engines["tts"]["name"] == "espeak" and engines["tts"]["voice"] == "en-us"


def test_policy_and_counters_in_data_and_no_password_on_disk(report: dict[str, Any]) -> None:
    assert "policy.json" in report["files"] and "audit-counters.json" in report["files"], report["files"]
    assert "options.json" in report["files"] and addon.CONFIG_NAME in report["files"]
    assert not report["password_in_files"]
    assert report["env_has_password"]  # the login reaches the bridge through its environment only
    assert report["exit_code"] == 0, report["log_tail"]


def test_the_device_link_is_the_ingress_page(report: dict[str, Any]) -> None:
    """The bridge listens on 0.0.0.0, which no browser reaches: Home Assistant's device link is
    the add-on's ingress page, by the slug Supervisor gives the add-on."""
    assert report["status"]["status_api"] == "homeassistant://hassio/ingress/5c53de3b_hearth"


def test_status_api_on_the_ingress_port(report: dict[str, Any]) -> None:
    # every address of the add-on's container (the ingress proxy comes from Supervisor's network)
    assert report["status_listeners"] and set(report["status_listeners"]) <= {"00000000", "00000000000000000000000000000000"}
    assert report["healthz"][0] == 200  # the image's HEALTHCHECK


def test_status_api_answers_what_ingress_forwards(report: dict[str, Any]) -> None:
    """Supervisor's ingress proxy forwards the browser's Host header: requests from its address
    are answered; the same request from any other address of the network is refused."""
    assert report["ingress_like"] == 200
    assert report["not_ingress"] == 403


class NoMqttService(BaseHTTPRequestHandler):
    """Supervisor without an MQTT provider: 400 "No service provider for mqtt"."""

    def do_GET(self) -> None:
        body = b'{"result": "error", "message": "No service provider for mqtt"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_start_errors_are_one_clear_line(tmp_path: Path) -> None:
    """No Mosquitto add-on, no Supervisor, no token: one line that says what is wrong, and no
    configuration written."""
    (tmp_path / "options.json").write_text(json.dumps(OPTIONS))
    server = HTTPServer(("127.0.0.1", 0), NoMqttService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(addon.AddonError, match="install and start the Mosquitto broker add-on"):
            addon.prepare(tmp_path, f"http://127.0.0.1:{server.server_port}", "token", wait=1)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(addon.AddonError, match="cannot reach Supervisor"):
        addon.prepare(tmp_path, f"http://127.0.0.1:{free_port()}", "token", wait=0.6)
    with pytest.raises(addon.AddonError, match="SUPERVISOR_TOKEN"):
        addon.prepare(tmp_path, "http://127.0.0.1:9", None)
    assert not (tmp_path / addon.CONFIG_NAME).exists()
    (tmp_path / "options.json").unlink()
    with pytest.raises(addon.AddonError, match="options.json is missing"):
        addon.prepare(tmp_path, "http://127.0.0.1:9", "token")


class ForbiddenDiscovery(NoMqttService):
    """Supervisor refusing the discovery (an add-on whose config.yaml does not declare it)."""

    def do_POST(self) -> None:
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_refused_discovery_leaves_the_key_in_the_log_and_the_start_goes_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = HTTPServer(("127.0.0.1", 0), ForbiddenDiscovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = addon.validate({"data_dir": str(tmp_path), "bridge_id": "hearth-test"})
    try:
        addon.offer_pairing(f"http://127.0.0.1:{server.server_port}", "token", tmp_path, settings)
    finally:
        server.shutdown()
        server.server_close()
    key = json.loads((tmp_path / "pairing.json").read_text())["key"]
    log = capsys.readouterr().err
    assert "Supervisor answered 403" in log and log.rstrip().endswith(key)
