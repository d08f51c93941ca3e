"""What Home Assistant's translation build makes of strings.json (for the translation tests)."""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any

import homeassistant

COMPONENT = Path(__file__).parents[2] / "custom_components" / "hearth"
_HA = Path(homeassistant.__file__).parent
_REFERENCE = re.compile(r"\[%key:([a-z0-9_:]+)%\]")


def _lookup(key: str, own: dict[str, Any]) -> str:
    parts = key.split("::")
    if parts[0] == "component":
        domain = parts[1]
        tree = (
            own
            if domain == "hearth"
            else json.loads((_HA / "components" / domain / "strings.json").read_text())
        )
        path = parts[2:]
    else:  # "common::..." and other top-level keys of Home Assistant's own strings.json
        tree = json.loads((_HA / "strings.json").read_text())
        path = parts
    value: Any = tree
    for part in path:
        value = value[part]
    if not isinstance(value, str):
        raise KeyError(key)
    return resolve_text(value, own)


def resolve_text(text: str, own: dict[str, Any]) -> str:
    """A string with every `[%key:...%]` reference replaced by the text it names."""
    return _REFERENCE.sub(lambda match: _lookup(match.group(1), own), text)


def resolve(tree: Any, own: dict[str, Any]) -> Any:
    """strings.json as translations/en.json must read (references resolved)."""
    if isinstance(tree, dict):
        return {key: resolve(value, own) for key, value in tree.items()}
    if isinstance(tree, str):
        return resolve_text(tree, own)
    return tree


def built_english() -> dict[str, Any]:
    """strings.json with its references resolved."""
    strings = json.loads((COMPONENT / "strings.json").read_text())
    return resolve(strings, strings)
