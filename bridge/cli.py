"""`hearth-bridge`: run the service, play a WAV as a satellite, or run the demo.

This module only parses arguments and wires objects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .config import ConfigError, load, parse_set_option
from .settings import Settings


def _broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mqtt-host", default=os.environ.get("HEARTH_MQTT_HOST"), help="MQTT broker host")
    parser.add_argument("--mqtt-port", type=int, default=os.environ.get("HEARTH_MQTT_PORT"), help="MQTT broker port")
    parser.add_argument("--mqtt-username", default=os.environ.get("HEARTH_MQTT_USERNAME"))
    parser.add_argument("--mqtt-password", default=os.environ.get("HEARTH_MQTT_PASSWORD"))
    parser.add_argument("--prefix", default=None, help="topic prefix (default hearth)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hearth-bridge", description="Hearth: private, local voice control for Home Assistant")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bridge service")
    run.add_argument("--config", "-c", help="YAML config file")
    _broker_args(run)
    run.add_argument("--data-dir", help="where the policy and counters are kept")
    run.add_argument("--vocabulary", help="vocabulary file (YAML/JSON) describing the home")
    run.add_argument("--status-port", type=int, help="status API port (0 = any free port)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override any config key, e.g. --set endpoint.silence_tail=0.4")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    sat = sub.add_parser("satellite", help="play a WAV file as a satellite and print the result as JSON")
    sat.add_argument("--id", required=True, help="satellite id")
    sat.add_argument("--wav", required=True, type=Path, help="WAV file (any rate; converted to 16 kHz mono)")
    sat.add_argument("--protocol", choices=("hearth", "hermes"), default="hearth")
    sat.add_argument("--wake", choices=("event", "bridge"), default="event",
                     help="event: announce the session; bridge: stream continuously, the bridge hears the wake word")
    sat.add_argument("--timeout", type=float, default=15.0)
    _broker_args(sat)

    pair = sub.add_parser("pair", help="print the pairing key to paste into Home Assistant (made if missing)")
    pair.add_argument("--config", "-c", help="YAML config file")
    pair.add_argument("--data-dir", help="where the pairing key is kept")
    pair.add_argument("--rotate", action="store_true",
                      help="make a new key: Home Assistant must be paired again (restart the bridge)")

    demo = sub.add_parser("demo", help="start a broker if needed, the bridge and a satellite speaking commands")
    demo.add_argument("--mqtt-host", default="127.0.0.1")
    demo.add_argument("--mqtt-port", type=int, default=1883)
    return parser


def _run_overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {
        "mqtt.host": args.mqtt_host, "mqtt.port": args.mqtt_port, "mqtt.username": args.mqtt_username,
        "mqtt.password": args.mqtt_password, "mqtt.prefix": args.prefix, "data_dir": args.data_dir,
        "vocabulary": args.vocabulary, "status_api.port": args.status_port, "log_level": args.log_level,
    }
    for item in args.set:
        key, value = parse_set_option(item)
        overrides[key] = value
    return overrides


async def _serve(settings: Settings) -> None:
    from .runtime import run_bridge

    await run_bridge(settings)


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load(args.config, _run_overrides(args))
    except ConfigError as err:
        print(f"hearth-bridge: config error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = _data_dir_problem(config.data_dir)
    if problem is not None:
        print(f"hearth-bridge: {problem}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config))
    except KeyboardInterrupt:
        pass
    except Exception as err:  # noqa: BLE001 - one clear line, not a traceback, for start-up errors
        from .recognition import VocabularyError
        from .runtime import StartupError

        if isinstance(err, VocabularyError):
            print(f"hearth-bridge: vocabulary error: {err}", file=sys.stderr)
            return 2
        if isinstance(err, StartupError):
            print(f"hearth-bridge: {err}", file=sys.stderr)
            return 2
        raise
    return 0


def _data_dir_problem(data_dir: Path) -> str | None:
    """Why the data directory cannot be used (made if missing, mode 0700), or None. A directory
    that exists but is read-only is usable: policy changes that cannot be saved are then refused
    with their errno, and the policy in force stays."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        return f"cannot create the data directory {data_dir}: {err.strerror or err}"
    if not data_dir.is_dir():
        return f"the data directory {data_dir} is not a directory"
    return None


def _cmd_satellite(args: argparse.Namespace) -> int:
    from .service.link import BrokerError
    from .tools.satellite import SatelliteError, SatelliteOptions, load_wav_pcm16k, run_satellite

    try:
        pcm = load_wav_pcm16k(args.wav)
    except (OSError, EOFError, ValueError) as err:
        print(f"hearth-bridge satellite: cannot read {args.wav}: {err}", file=sys.stderr)
        return 2
    options = SatelliteOptions(
        sat_id=args.id, host=args.mqtt_host or "127.0.0.1", port=int(args.mqtt_port or 1883),
        username=args.mqtt_username, password=args.mqtt_password, prefix=args.prefix or "hearth",
        protocol=args.protocol, wake=args.wake, timeout=args.timeout)
    try:
        result = asyncio.run(run_satellite(options, pcm))
    except SatelliteError as err:
        print(f"hearth-bridge satellite: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"hearth-bridge satellite: cannot reach the broker at {options.host}:{options.port}: {err}", file=sys.stderr)
        return 1
    except BrokerError as err:
        print(f"hearth-bridge satellite: MQTT error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _cmd_pair(args: argparse.Namespace) -> int:
    from .privacy.auth import PairingFileError, key_id, load_pairing, rotate

    try:
        config = load(args.config, {"data_dir": args.data_dir})
    except ConfigError as err:
        print(f"hearth-bridge pair: config error: {err}", file=sys.stderr)
        return 2
    if config.pairing_key is not None:
        print("hearth-bridge pair: the key is set in the config (pairing_key); change it there", file=sys.stderr)
        if args.rotate:
            return 2
        key: bytes | None = bytes.fromhex(config.pairing_key)
    else:
        problem = _data_dir_problem(config.data_dir)
        if problem is not None:
            print(f"hearth-bridge pair: {problem}", file=sys.stderr)
            return 2
        try:
            key = rotate(config.data_dir) if args.rotate else load_pairing(config.data_dir).key
        except (OSError, PairingFileError) as err:
            print(f"hearth-bridge pair: {err}", file=sys.stderr)
            return 1
        if key is None:
            print("hearth-bridge pair: the pairing file cannot be used; make a new key with --rotate", file=sys.stderr)
            return 1
    assert key is not None
    print(f"Pairing key (key id {key_id(key)}); paste it into Home Assistant's Hearth setup:\n{key.hex()}")
    if args.rotate:
        print("Restart the bridge, then re-pair Home Assistant (Hearth > Reconfigure): until then every "
              "privacy command is refused and the policy in force stays.")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .tools.demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run_demo(args.mqtt_host, args.mqtt_port))


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handlers = {"run": _cmd_run, "satellite": _cmd_satellite, "pair": _cmd_pair, "demo": _cmd_demo}
    sys.exit(handlers[args.command](args))
