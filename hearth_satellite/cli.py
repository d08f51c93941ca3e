"""`hearth-satellite`: command-line options (named like wyoming-satellite's where they match)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import socket
from pathlib import Path

from .hooks import EVENTS
from .protocol import SATELLITE_ID, WAKE_WORDS
from .satellite import DEFAULT_MIC, DEFAULT_SND, Options, Satellite


def default_id() -> str:
    name = re.sub(r"[^A-Za-z0-9_.:@-]", "-", socket.gethostname())[:64]
    return name or "satellite"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hearth-satellite", description=(
        "A Hearth voice satellite: hears the wake word on the device and streams the command to "
        "the Hearth bridge over MQTT; nothing leaves the device before the wake word or while muted."))
    p.add_argument("--id", default=default_id(), help="satellite id (default: the host name)")
    p.add_argument("--name", help="display name (default: the id)")
    p.add_argument("--area", help="the Home Assistant area it is in (satellites of one area compete for a wake)")
    mqtt = p.add_argument_group("MQTT")
    mqtt.add_argument("--host", default=os.environ.get("HEARTH_MQTT_HOST", "127.0.0.1"))
    mqtt.add_argument("--port", type=int, default=int(os.environ.get("HEARTH_MQTT_PORT", "1883")))
    mqtt.add_argument("--username", default=os.environ.get("HEARTH_MQTT_USERNAME"))
    mqtt.add_argument("--password-file", type=Path,
                      help="file holding the MQTT password (or set HEARTH_MQTT_PASSWORD)")
    mqtt.add_argument("--ca-file", help="connect with TLS, trusting this CA certificate")
    mqtt.add_argument("--prefix", default="hearth", help="the bridge's topic prefix")
    audio = p.add_argument_group("audio")
    audio.add_argument("--mic-command", default=DEFAULT_MIC,
                       help="prints raw 16 kHz 16-bit mono PCM on stdout (default: %(default)s)")
    audio.add_argument("--snd-command", default=DEFAULT_SND,
                       help="plays raw 16-bit mono PCM from stdin; {rate} is replaced by its rate "
                            "(default: %(default)s); empty: no speaker")
    audio.add_argument("--play-rate", type=int, default=16000, help="the rate answers are sent at (8000-48000)")
    audio.add_argument("--noise-suppression", type=int, default=0, choices=range(5), metavar="0..4",
                       help="webrtc noise suppression level (needs webrtc-noise-gain)")
    audio.add_argument("--auto-gain", type=int, default=0, choices=range(32), metavar="0..31",
                       help="webrtc automatic gain target in dBFS (needs webrtc-noise-gain)")
    wake = p.add_argument_group("wake word")
    wake.add_argument("--wake-word", default="okay_nabu", choices=WAKE_WORDS)
    wake.add_argument("--wake-sound", type=Path, help="WAV played when the wake word is heard")
    wake.add_argument("--done-sound", type=Path, help="WAV played when the bridge has heard the command")
    wake.add_argument("--max-stream-seconds", type=float, default=15.0, help="longest command streamed")
    wake.add_argument("--refractory-seconds", type=float, default=2.0,
                      help="ignore the wake word this long after it was heard")
    mute = p.add_argument_group("mute", "also SIGUSR1 (mute) and SIGUSR2 (unmute), and the bridge's policy")
    mute.add_argument("--mute-file", type=Path, help="the microphone is muted while this file exists")
    hooks = p.add_argument_group("event commands", "shell commands run on each event, without waiting for them; "
                                 "they get HEARTH_EVENT (and e.g. HEARTH_WAKE_WORD) in their environment")
    for event in EVENTS:
        hooks.add_argument(f"--on-{event}", metavar="COMMAND")
    p.add_argument("--debug", action="store_true")
    return p


def options_from(args: argparse.Namespace) -> Options:
    if not SATELLITE_ID.fullmatch(args.id):
        raise SystemExit(f"--id {args.id!r}: 1-64 characters from A-Z, a-z, 0-9 and _ - . : @")
    if not 8000 <= args.play_rate <= 48000:
        raise SystemExit("--play-rate must be 8000-48000")
    password = os.environ.get("HEARTH_MQTT_PASSWORD")
    if args.password_file is not None:
        password = args.password_file.read_text().strip()
    return Options(
        sat_id=args.id, host=args.host, port=args.port, prefix=args.prefix, username=args.username,
        password=password, ca_file=args.ca_file, name=args.name, area=args.area,
        mic_command=args.mic_command, snd_command=args.snd_command or None, play_rate=args.play_rate,
        wake_word=args.wake_word, wake_sound=args.wake_sound, done_sound=args.done_sound,
        noise_suppression=args.noise_suppression, auto_gain=args.auto_gain, mute_file=args.mute_file,
        max_stream_seconds=args.max_stream_seconds, refractory_seconds=args.refractory_seconds,
        hooks={event: getattr(args, f"on_{event}") for event in EVENTS},
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = options_from(args)
    try:
        satellite = Satellite(options)
    except ImportError as err:
        raise SystemExit(f"--noise-suppression/--auto-gain need the webrtc-noise-gain package: {err}") from None
    except (ValueError, OSError) as err:
        raise SystemExit(str(err)) from None
    asyncio.run(satellite.run())
    return 0
