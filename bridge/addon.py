"""The Home Assistant add-on's start: the add-on's options and the MQTT service Supervisor hands
out become the bridge's configuration, then this process becomes `hearth-bridge run`.

Supervisor writes the options the owner chose to ``/data/options.json`` and tells an add-on that
declares ``services: [mqtt:need]`` where the broker is and how to log in at
``GET http://supervisor/services/mqtt`` (bearer token ``SUPERVISOR_TOKEN``). The policy and the
audit counters stay in ``/data``, which Supervisor keeps across restarts, updates and backups.
The generated configuration (``/data/hearth-bridge.yaml``) holds no secret: the MQTT login goes to
the bridge in its environment (``HEARTH_MQTT_USERNAME``/``HEARTH_MQTT_PASSWORD``).

The status API listens on the add-on's own network address at :data:`STATUS_PORT`, the add-on's
``ingress_port``: Supervisor's ingress proxy (behind Home Assistant's login) is its only way in,
since the add-on publishes no port on the host.

The pairing key Home Assistant signs privacy commands with (docs/security.md) is made in ``/data``
here, before the bridge starts, and handed to Home Assistant through Supervisor's discovery
(``POST http://supervisor/discovery``, service ``hearth``; config.yaml declares it): the Hearth
integration's ``async_step_hassio`` receives it, so the owner pastes nothing. When Supervisor does
not take it, the add-on's log (shown only to Home Assistant's administrators) prints the key to
paste into the integration instead.

Run as ``python -m bridge.addon``; ``--data-dir`` and ``--supervisor`` (or ``HEARTH_ADDON_DATA``
and ``HEARTH_SUPERVISOR_URL``) point it elsewhere for tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, validate
from .settings import Settings

#: Supervisor's ingress proxy on the add-on network (hassio bridge): the only client the status
#: API answers besides loopback; it forwards the browser's Host header, so it skips the Host check
SUPERVISOR_INGRESS = "172.30.32.2"
#: the status API's port inside the add-on: config.yaml's `ingress_port`
STATUS_PORT = 8765
#: the Wyoming server's port inside the add-on (Home Assistant reaches add-ons by host name)
WYOMING_PORT = 10700
CONFIG_NAME = "hearth-bridge.yaml"
#: how long Supervisor may take to answer while the system is still starting
SUPERVISOR_WAIT = 30.0


class AddonError(Exception):
    """The add-on cannot start; str() is one line for the add-on's log."""


def read_options(data_dir: Path) -> dict[str, Any]:
    """The owner's options, as Supervisor validated and wrote them."""
    path = data_dir / "options.json"
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AddonError(f"{path} is missing: is this running as a Home Assistant add-on?") from None
    except (OSError, ValueError) as err:
        raise AddonError(f"cannot read {path}: {err}") from None
    if not isinstance(options, dict):
        raise AddonError(f"{path}: expected a JSON object")
    return options


def fetch_mqtt_service(base_url: str, token: str | None, wait: float = SUPERVISOR_WAIT) -> dict[str, Any]:
    """The MQTT service's `host`, `port`, `username`, `password` and `ssl` from Supervisor's
    services API. Retries while Supervisor cannot be reached, for at most `wait` seconds."""
    if not token:
        raise AddonError("SUPERVISOR_TOKEN is not set: the MQTT login comes from Supervisor")
    url = base_url.rstrip("/") + "/services/mqtt"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read().decode("utf-8"))
            break
        except urllib.error.HTTPError as err:
            if err.code in (400, 404):
                raise AddonError(_NO_BROKER) from None
            if err.code in (401, 403):
                raise AddonError(f"Supervisor refused the MQTT service request ({err.code})") from None
            problem = f"Supervisor answered {err.code}"
        except (urllib.error.URLError, OSError, ValueError) as err:
            problem = f"cannot reach Supervisor at {base_url}: {getattr(err, 'reason', err)}"
        if time.monotonic() + delay > deadline:
            raise AddonError(problem)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(body, dict) or body.get("result") != "ok" or not isinstance(data, dict) or not data.get("host"):
        raise AddonError(_NO_BROKER)
    return data


def fetch_own_slug(base_url: str, token: str) -> str | None:
    """This add-on's slug as Supervisor knows it (``<repository>_hearth``), for the device link to
    its ingress page; None when Supervisor does not say (the link is then left out)."""
    request = urllib.request.Request(base_url.rstrip("/") + "/addons/self/info",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    data = body.get("data") if isinstance(body, dict) else None
    slug = data.get("slug") if isinstance(data, dict) else None
    return slug if isinstance(slug, str) and slug.replace("_", "").replace("-", "").isalnum() else None


_NO_BROKER = ("no MQTT broker is available: install and start the Mosquitto broker add-on "
              "(Settings → Add-ons → Add-on store → Mosquitto broker), then restart Hearth")


def bridge_config(options: Mapping[str, Any], mqtt: Mapping[str, Any], data_dir: Path,
                  slug: str | None = None) -> dict[str, Any]:
    """The bridge's configuration (bridge/config.py's schema) from the add-on's options and the
    MQTT service, without the MQTT login."""
    # a Wyoming server exactly when its host is given (the add-on has no engine option: one that
    # said wyoming without a host passed Supervisor's schema and then stopped the bridge)
    stt: dict[str, Any] = {"engine": "wyoming" if options.get("stt_host") else "pocketsphinx",
                           "fallback": bool(options.get("stt_fallback", True))}
    if options.get("stt_host"):
        stt["host"] = options["stt_host"]
    if options.get("stt_port"):
        stt["port"] = options["stt_port"]
    # a Wyoming voice exactly when its host is given (no engine option that could name it alone)
    tts: dict[str, Any] = {"engine": "none" if options.get("tts_engine") == "none"
                           else "wyoming" if options.get("tts_host") else "espeak"}
    for key in ("voice", "host", "port"):
        if options.get(f"tts_{key}"):
            tts[key] = options[f"tts_{key}"]
    satellites: dict[str, dict[str, Any]] = {}
    for entry in options.get("satellites") or []:
        sat_id = entry.get("id")
        if not isinstance(sat_id, str):
            raise AddonError("satellites: every satellite needs an id")
        if sat_id in satellites:
            raise AddonError(f"satellites: {sat_id!r} is listed twice")
        satellites[sat_id] = {key: entry[key] for key in ("area", "name", "wake_word") if entry.get(key)}
    endpoint = {key: options[key] for key in ("silence_tail", "complete_tail", "vad_tail") if key in options}
    tls = bool(mqtt.get("ssl"))
    return {
        "data_dir": str(data_dir),
        "log_level": options.get("log_level", "info"),
        "mqtt": {
            "host": str(mqtt["host"]),
            "port": int(mqtt.get("port") or (8883 if tls else 1883)),
            "prefix": options.get("topic_prefix", "hearth"),
            "tls": {"enabled": tls},
        },
        "hermes": {"enabled": bool(options.get("hermes", True))},
        "wake": {"model": options.get("wake_word", "okay_nabu")},
        "satellites": satellites,
        "endpoint": endpoint,
        "stt": stt,
        "tts": tts,
        # Reached only through Supervisor's ingress proxy: the add-on publishes no port, and the
        # API is read-only and content-free unless the owner chose retention "memory".
        # The device link in Home Assistant: the add-on's ingress page (0.0.0.0 is no address).
        "status_api": {"enabled": True, "host": "0.0.0.0", "port": STATUS_PORT,
                       "ingress_source": SUPERVISOR_INGRESS,
                       "link": f"homeassistant://hassio/ingress/{slug}" if slug else None},
        "wyoming_server": {"enabled": bool(options.get("wyoming_server", False)),
                           "host": "0.0.0.0", "port": WYOMING_PORT},
    }


def write_config(config: Mapping[str, Any], path: Path) -> None:
    """Writes the configuration the bridge reads, replacing the previous one whole."""
    text = ("# Written by the Hearth add-on at every start from its options: change the options in\n"
            "# Home Assistant instead (Settings → Add-ons → Hearth → Configuration).\n"
            + yaml.safe_dump(dict(config), sort_keys=False))
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


def bridge_command(config_path: Path) -> list[str]:
    """`hearth-bridge run` of this Python's environment."""
    script = Path(sys.executable).with_name("hearth-bridge")
    if script.exists():
        return [str(script), "run", "--config", str(config_path)]
    return [sys.executable, "-m", "bridge", "run", "--config", str(config_path)]


def prepare(data_dir: Path, supervisor_url: str, token: str | None,
            wait: float = SUPERVISOR_WAIT) -> tuple[list[str], dict[str, str]]:
    """Reads the options and the MQTT service, writes the bridge's configuration; returns the
    command and the environment to start the bridge with."""
    options = read_options(data_dir)
    mqtt = fetch_mqtt_service(supervisor_url, token, wait)
    config = bridge_config(options, mqtt, data_dir, fetch_own_slug(supervisor_url, token or ""))
    try:
        validate(config)
    except ConfigError as err:
        raise AddonError(f"option error: {err}") from None
    config_path = data_dir / CONFIG_NAME
    write_config(config, config_path)
    offer_pairing(supervisor_url, token, data_dir, validate(config))
    env = {key: value for key, value in os.environ.items()
           if key not in ("HEARTH_MQTT_USERNAME", "HEARTH_MQTT_PASSWORD")}
    if mqtt.get("username"):
        env["HEARTH_MQTT_USERNAME"] = str(mqtt["username"])
    if mqtt.get("password"):
        env["HEARTH_MQTT_PASSWORD"] = str(mqtt["password"])
    return bridge_command(config_path), env


def send_discovery(base_url: str, token: str, config: Mapping[str, Any]) -> str | None:
    """Tells Home Assistant about the bridge through Supervisor's discovery (service `hearth`);
    returns why it failed, or None."""
    body = json.dumps({"service": "hearth", "config": dict(config)}).encode("utf-8")
    request = urllib.request.Request(base_url.rstrip("/") + "/discovery", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        return f"Supervisor answered {err.code}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        return f"cannot reach Supervisor: {getattr(err, 'reason', err)}"
    if not isinstance(answer, dict) or answer.get("result") != "ok":
        return f"Supervisor did not accept it: {answer!r:.200}"
    return None


def offer_pairing(base_url: str, token: str | None, data_dir: Path, settings: Settings) -> None:
    """Makes the pairing key if there is none yet and hands it to Home Assistant."""
    from .privacy.auth import PairingFileError, key_id, load_pairing

    try:
        key = load_pairing(data_dir, settings.pairing_key).key
    except (OSError, PairingFileError) as err:
        print(f"hearth add-on: no pairing key ({err}); privacy commands will be refused", file=sys.stderr)
        return
    if key is None:
        print("hearth add-on: the pairing file cannot be used; every privacy command is refused until it is "
              "replaced (delete pairing.json in the add-on's data to make a new key)", file=sys.stderr)
        return
    problem = send_discovery(base_url, token or "", {
        "bridge_id": settings.bridge_id, "prefix": settings.mqtt.prefix, "key": key.hex(),
        "key_id": key_id(key)})
    if problem is None:
        print(f"hearth add-on: pairing key {key_id(key)} offered to Home Assistant", file=sys.stderr)
    else:
        print(f"hearth add-on: could not offer the pairing key to Home Assistant ({problem}); paste it into the "
              f"Hearth integration's setup: {key.hex()}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.addon",
                                     description="Start the Hearth bridge as a Home Assistant add-on")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("HEARTH_ADDON_DATA", "/data")),
                        help="the add-on's data folder (options.json; the policy and counters)")
    parser.add_argument("--supervisor", default=os.environ.get("HEARTH_SUPERVISOR_URL", "http://supervisor"),
                        help="Supervisor's API")
    args = parser.parse_args(argv)
    try:
        command, env = prepare(args.data_dir, args.supervisor, os.environ.get("SUPERVISOR_TOKEN"))
    except AddonError as err:
        print(f"hearth add-on: {err}", file=sys.stderr)
        return 1
    print(f"hearth add-on: starting the bridge ({args.data_dir / CONFIG_NAME})", file=sys.stderr, flush=True)
    executable = command[0] if os.path.isabs(command[0]) else shutil.which(command[0]) or command[0]
    os.execve(executable, command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
