"""The supported Home Assistant releases are stated once, in hacs.json; the docs say the same, and
the release these tests run on is one of them (scripts/test runs them on the oldest too)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as HA_VERSION

ROOT = Path(__file__).parents[2]


def _oldest() -> AwesomeVersion:
    return AwesomeVersion(json.loads((ROOT / "hacs.json").read_text())["homeassistant"])


def test_running_on_a_supported_release() -> None:
    assert AwesomeVersion(HA_VERSION) >= _oldest()


def test_docs_state_the_oldest_release() -> None:
    docs = (ROOT / "docs" / "home-assistant.md").read_text()
    stated = re.findall(r"Home Assistant (\d{4}\.\d+(?:\.\d+)?) or newer", docs)
    assert stated, "docs/home-assistant.md names no oldest release"
    oldest = _oldest()
    for version in stated:
        assert AwesomeVersion(version).section(0) == oldest.section(0)
        assert AwesomeVersion(version).section(1) == oldest.section(1)


def test_names_the_oldest_release_needs_are_there() -> None:
    """What the integration imports that is newest: the action target helper of 2026.1."""
    from homeassistant.helpers.target import TargetSelection  # noqa: F401
