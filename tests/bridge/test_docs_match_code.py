"""Docs and code cannot drift: every command-line flag, configuration key and MQTT topic the
documentation names exists in the code, and every configuration example passes the bridge's own
configuration check (the add-on's examples pass Supervisor's rules for its options).

Read: README.md, docs/**/*.md, hearth/DOCS.md, satellite/README.md, and the integration's
strings.json and translations (the config flow's help names a flag). Flags come from inline code
and code blocks; configuration keys from YAML blocks and inline `dotted.keys`; topics from inline
code that starts with `<prefix>/`, `hearth/bridge/`, `hearth/satellite/` or `hermes/`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
import yaml

from bridge.config import CONFIG_SCHEMA, ConfigError, validate
from bridge.protocol.hearth import Topics

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "hearth/DOCS.md", ROOT / "satellite/README.md",
               *(ROOT / "docs").rglob("*.md")])
STRINGS = sorted([ROOT / "custom_components/hearth/strings.json",
                  *(ROOT / "custom_components/hearth/translations").glob("*.json")])
#: where the programs' flags are defined (argparse)
FLAG_SOURCES = ("bridge", "hearth_satellite", "bench", "scripts", "docs/images")
#: other programs' flags the docs use, each with its program
OTHER_FLAGS = {
    "--no-deps": "pip", "--user": "systemctl", "--kill-whom": "systemctl", "--now": "systemctl",
    "--privileged": "docker", "--rm": "docker", "--propagation": "unshare", "--mount": "unshare",
    "--system": "useradd", "--variant": "debootstrap", "--version": "every program",
    "--help": "every program", "--no-binary": "pip", "--only-binary": "pip",
    "--rate": "parec/pacat", "--channels": "parec/pacat", "--format": "parec/pacat", "--raw": "parec/pacat",
    "--num-events": "gpiomon",
}
#: flags of bench runs recorded in the docs with the command line they had then (bench/ was
#: rewritten since, commit b23211e): historical records, not instructions
RETIRED_BENCH_FLAGS = {"--noisy-non": "tune_offline.py", "--clean-non-commands": "accuracy_bench.py"}
INLINE = re.compile(r"`([^`\n]+)`")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
SATELLITE_PLACEHOLDER = re.compile(r"^<[a-z_]+>$|^\+$")


def code_of(path: Path) -> Iterator[tuple[str, str]]:
    """(language or 'inline', text) of every code span and block in a Markdown file."""
    text = path.read_text(encoding="utf-8")
    for match in BLOCK.finditer(text):
        yield match.group(1) or "text", match.group(2)
    for match in INLINE.finditer(BLOCK.sub("", text)):
        yield "inline", match.group(1)


def defined_flags() -> set[str]:
    flags: set[str] = set()
    for folder in FLAG_SOURCES:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and (path.suffix == ".py" or path.parent.name == "scripts"):
                for call in re.findall(r"add_argument\((.*?)[,)]\s*(?:[a-z_]+=|\n|$)", path.read_text(errors="replace"),
                                       re.M):
                    flags.update(re.findall(r"""["'](--[a-z0-9-]+)["']""", call))
    from hearth_satellite.hooks import EVENTS

    return flags | {f"--on-{event}" for event in EVENTS}  # made in a loop: --on-wake, ...


def test_every_documented_flag_exists() -> None:
    known = defined_flags() | set(OTHER_FLAGS) | set(RETIRED_BENCH_FLAGS)
    assert {"--prefix", "--mic-command", "--set", "--kill-whom"} <= known
    missing = []
    for path in DOCS:
        for _lang, code in code_of(path):
            for flag in FLAG.findall(code):
                if flag not in known and not (flag == "--on" and "--on-EVENT" in code):
                    missing.append(f"{path.relative_to(ROOT)}: {flag}")
    for path in STRINGS:
        for text in INLINE.findall(path.read_text(encoding="utf-8")):
            missing += [f"{path.relative_to(ROOT)}: {flag}" for flag in FLAG.findall(text) if flag not in known]
    assert not missing, "flags the docs name that no program has:\n" + "\n".join(sorted(set(missing)))


def schema_node(schema: Any, key: str) -> Any:
    """The schema under `key` of a mapping schema, or raise KeyError."""
    while isinstance(schema, vol.All):
        schema = next(v for v in schema.validators if isinstance(v, (dict, vol.Schema)))
    if isinstance(schema, vol.Schema):
        schema = schema.schema
    if isinstance(schema, dict):
        for marker, value in schema.items():
            if str(marker) == key or marker is str:
                return value
    raise KeyError(key)


def config_key_exists(dotted: str) -> bool:
    node: Any = CONFIG_SCHEMA
    for part in dotted.split("."):
        if SATELLITE_PLACEHOLDER.match(part):
            part = "kitchen"
        try:
            node = schema_node(node, part)
        except (KeyError, StopIteration):
            return False
    return True


TOP_KEYS = {str(key) for key in CONFIG_SCHEMA.schema}
DOTTED = re.compile(r"^(?:--set )?([a-z_]+(?:\.(?:[a-z_]+|<[a-z_]+>))+)(?:=\S*)?$")
FILE_SUFFIXES = {"md", "py", "yaml", "yml", "json", "txt", "sh", "toml", "service", "conf", "pem", "wav"}


def test_every_documented_configuration_key_exists() -> None:
    assert config_key_exists("satellites.<id>.wake_word") and config_key_exists("mqtt.tls.ca_file")
    assert not config_key_exists("tts.fallback") and not config_key_exists("mqtt.topic_prefix")
    missing = []
    for path in DOCS:
        for lang, code in code_of(path):
            if lang != "inline":
                continue
            match = DOTTED.match(code.strip())
            if not match:
                continue
            dotted = match.group(1)
            head, _, tail = dotted.partition(".")
            if head not in TOP_KEYS or tail.split(".")[-1] in FILE_SUFFIXES:
                continue
            if not config_key_exists(dotted):
                missing.append(f"{path.relative_to(ROOT)}: {dotted}")
    assert not missing, "configuration keys the docs name that the schema lacks:\n" + "\n".join(sorted(set(missing)))


def bridge_examples() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every YAML block in the docs that is a bridge configuration (its keys are the bridge's)."""
    for path in DOCS:
        if path.name == "DOCS.md":
            continue  # the add-on's options: test_addon_examples_pass_supervisors_rules
        for index, (lang, code) in enumerate(code_of(path)):
            if lang != "yaml":
                continue
            try:
                data = yaml.safe_load(code)
            except yaml.YAMLError as err:
                raise AssertionError(f"{path.relative_to(ROOT)} block {index}: not YAML: {err}") from None
            if isinstance(data, dict) and data and set(map(str, data)) <= TOP_KEYS:
                yield f"{path.relative_to(ROOT)}#{index}", data


def test_every_configuration_example_passes_the_config_check(tmp_path: Path) -> None:
    examples = dict(bridge_examples())
    # the full example in docs/configuration.md and README's minimal one are among them
    assert any(name.startswith("docs/configuration.md") and "status_api" in data for name, data in examples.items())
    assert any(name.startswith("README.md") for name in examples)
    failures = []
    for name, data in examples.items():
        try:
            validate({**data, "data_dir": str(tmp_path)})
        except ConfigError as err:
            failures.append(f"{name}: {err}")
    assert not failures, "documented configurations the bridge refuses:\n" + "\n".join(failures)


def test_addon_examples_pass_supervisors_rules() -> None:
    from tests.addon import supervisor_rules as rules

    config = yaml.safe_load((ROOT / "hearth/config.yaml").read_text())
    blocks = [code for lang, code in code_of(ROOT / "hearth/DOCS.md") if lang == "yaml"]
    assert blocks
    for code in blocks:
        # Supervisor validates the owner's options over the defaults
        rules.validate_options(config["schema"], {**config["options"], **yaml.safe_load(code)})


def code_literals() -> str:
    parts = []
    for folder in ("bridge", "hearth_satellite", "custom_components/hearth"):
        parts += [p.read_text(errors="replace") for p in (ROOT / folder).rglob("*.py")]
    return "\n".join(parts)


#: topics the docs name as ones the bridge does not act on
NOT_HANDLED_TOPICS = {"hermes/dialogueManager/startSession": "the ESP32 firmware's button (esp32-hermes.md)"}
TOPIC = re.compile(r"^(?:<prefix>|hearth)/(?:bridge|satellite)/[^\s`]*$|^hermes/[A-Za-z]+/[^\s`]*$")


def documented_topics() -> Iterator[tuple[str, str]]:
    for path in DOCS:
        for lang, code in code_of(path):
            if lang == "inline":
                topic = code.strip().split(" ")[0].rstrip(",;:").removesuffix("…")
                if not TOPIC.match(topic):
                    continue
                braces = re.search(r"\{([a-z_,/]+)\}$", topic)  # <prefix>/satellite/<id>/{status,audio}
                for leaf in braces.group(1).split(",") if braces else [""]:
                    yield str(path.relative_to(ROOT)), topic[:braces.start()] + leaf if braces else topic


def test_every_documented_topic_exists() -> None:
    topics = Topics("hearth")
    bridge_topics = {value for value in vars(topics).values() if isinstance(value, str)}
    code = code_literals()
    found = list(documented_topics())
    assert len(found) > 20
    missing = []
    for where, topic in found:
        if topic in NOT_HANDLED_TOPICS:
            text = " ".join((ROOT / where).read_text().split())
            assert f"`{topic}`" in text and "does not act on" in text
            continue
        parts = topic.replace("<prefix>", "hearth").split("/")
        if parts[0] == "hermes":
            # every fixed level of a Hermes topic is one the code builds or matches
            fixed = [p for p in parts[1:] if p not in ("+", "#") and not p.startswith("<") and not p.startswith("{")]
            if not all(f'"{p}' in code or f"/{p}" in code for p in fixed):
                missing.append(f"{where}: {topic}")
        elif parts[1] == "bridge":
            name = "/".join(parts)
            if name not in bridge_topics and not (name.endswith("#") or name.endswith("+")):
                missing.append(f"{where}: {topic}")
        else:
            leaf = "/".join(parts[3:])
            if leaf in ("", "#", "+"):
                continue
            if not any(f'"{leaf}"' in code or f"/{leaf}\"" in code for leaf in (leaf, leaf.split("/")[0])):
                missing.append(f"{where}: {topic}")
    assert not missing, "topics the docs name that the code never uses:\n" + "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("broken", ["tts.speaker", "mqtt.topic_prefix", "satellites.<id>.wakeword"])
def test_the_key_check_can_fail(broken: str) -> None:
    assert not config_key_exists(broken)
