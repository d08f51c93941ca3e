"""Translations: English as Home Assistant's translation build makes it from strings.json, and
German, French, Dutch and Spanish with exactly the same keys and the same placeholders."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .translations import COMPONENT, built_english

LANGUAGES = ["de", "en", "es", "fr", "nl"]
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flat(value, path))
        else:
            flat[path] = value
    return flat


def _load(language: str) -> dict[str, Any]:
    return json.loads((COMPONENT / "translations" / f"{language}.json").read_text("utf-8"))


def test_the_languages_shipped() -> None:
    assert sorted(path.stem for path in (COMPONENT / "translations").glob("*.json")) == LANGUAGES


def test_english_is_strings_json_as_built() -> None:
    assert _load("en") == built_english()


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_translation_has_exactly_the_keys_of_strings_json(language: str) -> None:
    english = _flat(built_english())
    translated = _flat(_load(language))
    assert sorted(set(english) - set(translated)) == [], "missing"
    assert sorted(set(translated) - set(english)) == [], "not in strings.json"
    for key, text in translated.items():
        assert isinstance(text, str) and text.strip(), key
        # The same placeholders, or Home Assistant fails to format the message.
        assert set(_PLACEHOLDER.findall(text)) == set(_PLACEHOLDER.findall(english[key])), key
        assert "[%key:" not in text, key


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_translation_is_translated(language: str) -> None:
    """Most strings differ from the English (names such as "Alexa" may stay)."""
    english = _flat(built_english())
    translated = _flat(_load(language))
    same = [key for key, text in translated.items() if text == english[key]]
    assert len(same) < len(english) // 8, same
