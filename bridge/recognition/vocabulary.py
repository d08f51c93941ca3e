"""The home's vocabulary: areas, floors and entities that voice commands may name.

The JSON shape is the one in ``docs/protocol.md`` ("Vocabulary"). :func:`parse_vocabulary`
validates it strictly and raises :class:`VocabularyError` with a message that names the field
and what was expected, so Home Assistant can show the user what to fix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

SUPPORTED_LANGUAGES = ("en",)
MAX_ENTITIES = 2000
MAX_AREAS = 500
MAX_FLOORS = 100
MAX_ALIASES = 20
MAX_SENTENCES = 500
MAX_NAME_CHARS = 100
MAX_ID_CHARS = 255


class VocabularyError(ValueError):
    """A vocabulary broke a rule; the message names the field and what was expected."""


@dataclass(frozen=True)
class Floor:
    """A floor of the home."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Area:
    """An area (room) of the home, optionally on a floor."""

    id: str
    name: str
    aliases: tuple[str, ...] = ()
    floor: str | None = None


@dataclass(frozen=True)
class Entity:
    """An entity exposed to voice control (``id`` is the Home Assistant entity id)."""

    id: str
    name: str
    domain: str
    aliases: tuple[str, ...] = ()
    area: str | None = None
    device_class: str | None = None


@dataclass(frozen=True)
class Vocabulary:
    """Everything the recognizer may hear about this home."""

    language: str
    areas: tuple[Area, ...]
    floors: tuple[Floor, ...]
    entities: tuple[Entity, ...]
    sentences: tuple[str, ...] = ()
    polite: bool = False
    """Commands may start with "please" / "can you" / "could you" / "would you" and end with
    "please" (Home Assistant's skip words). Off by default: it costs some accuracy on plain
    commands."""

    def hash(self) -> str:
        """A stable content hash (sha256 hex, first 16 characters) of the vocabulary."""
        fields = asdict(self)
        if not self.polite:
            del fields["polite"]  # hashes of vocabularies without it stay what they were
        blob = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def area_by_id(self, area_id: str) -> Area | None:
        """The area with this id, or None."""
        for area in self.areas:
            if area.id == area_id:
                return area
        return None


def _fail(field: str, expected: str) -> VocabularyError:
    return VocabularyError(f"{field}: {expected}")


def _unicode(value: str, field: str) -> str:
    """`value` if it is text that can be written as UTF-8 (JSON's \\ud800 escapes can make
    strings with an unpaired surrogate half, which no encoder, hash or recognizer accepts)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(field, "must be valid Unicode text (it holds an unpaired surrogate)") from None
    return value


def _name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, "must be a non-empty string")
    _unicode(value, field)
    if len(value) > MAX_NAME_CHARS:
        raise _fail(field, f"must be at most {MAX_NAME_CHARS} characters (got {len(value)})")
    if not any(ch.isalnum() for ch in value):
        raise _fail(field, "must contain at least one letter or digit")
    return value.strip()


def _ident(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, "must be a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise _fail(field, f"must be at most {MAX_ID_CHARS} characters")
    return _unicode(value, field)


def _aliases(value: object, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(field, "must be a list of strings")
    if len(value) > MAX_ALIASES:
        raise _fail(field, f"must have at most {MAX_ALIASES} aliases (got {len(value)})")
    return tuple(_name(alias, f"{field}[{i}]") for i, alias in enumerate(value))


def _optional_ref(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(field, "must be a non-empty string or null")
    return _unicode(value, field)


def _object(value: object, field: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _fail(field, "must be an object")
    return value


def _list(data: dict[str, object], key: str, limit: int, required: bool = True) -> list[object]:
    if key not in data:
        if required:
            raise _fail(key, "is required (a list)")
        return []
    value = data[key]
    if not isinstance(value, list):
        raise _fail(key, "must be a list")
    if len(value) > limit:
        raise _fail(key, f"must have at most {limit} items (got {len(value)})")
    return value


def _check_unique(ids: list[str], what: str) -> None:
    seen: dict[str, int] = {}
    for i, ident in enumerate(ids):
        if ident in seen:
            raise _fail(f"{what}[{i}].id", f"duplicate id {ident!r} (also {what}[{seen[ident]}])")
        seen[ident] = i


def parse_vocabulary(data: object) -> Vocabulary:
    """Validate a decoded vocabulary JSON document and return it as a :class:`Vocabulary`.

    Raises :class:`VocabularyError` for a missing or mistyped field, a duplicate id, an empty or
    over-long name, a reference to an unknown area or floor, a list over its limit, or an
    unsupported language.
    """
    root = _object(data, "vocabulary")
    language = root.get("language")
    if not isinstance(language, str) or not language:
        raise _fail("language", "is required (a language code such as 'en')")
    _unicode(language, "language")
    base_language = language.lower().replace("_", "-").split("-")[0]
    if base_language not in SUPPORTED_LANGUAGES:
        raise _fail("language", f"unsupported language {language!r} (supported: "
                                f"{', '.join(SUPPORTED_LANGUAGES)})")

    floors: list[Floor] = []
    for i, raw in enumerate(_list(root, "floors", MAX_FLOORS, required=False)):
        item = _object(raw, f"floors[{i}]")
        floors.append(Floor(id=_ident(item.get("id"), f"floors[{i}].id"),
                            name=_name(item.get("name"), f"floors[{i}].name"),
                            aliases=_aliases(item.get("aliases"), f"floors[{i}].aliases")))
    _check_unique([f.id for f in floors], "floors")
    floor_ids = {f.id for f in floors}

    areas: list[Area] = []
    for i, raw in enumerate(_list(root, "areas", MAX_AREAS)):
        item = _object(raw, f"areas[{i}]")
        floor = _optional_ref(item.get("floor"), f"areas[{i}].floor")
        if floor is not None and floor not in floor_ids:
            raise _fail(f"areas[{i}].floor", f"unknown floor id {floor!r}")
        areas.append(Area(id=_ident(item.get("id"), f"areas[{i}].id"),
                          name=_name(item.get("name"), f"areas[{i}].name"),
                          aliases=_aliases(item.get("aliases"), f"areas[{i}].aliases"),
                          floor=floor))
    _check_unique([a.id for a in areas], "areas")
    area_ids = {a.id for a in areas}

    entities: list[Entity] = []
    for i, raw in enumerate(_list(root, "entities", MAX_ENTITIES)):
        item = _object(raw, f"entities[{i}]")
        ident = _ident(item.get("id"), f"entities[{i}].id")
        domain = item.get("domain")
        if domain is None and "." in ident:
            domain = ident.split(".", 1)[0]
        if not isinstance(domain, str) or not domain.strip() or not domain.replace("_", "").isalnum():
            raise _fail(f"entities[{i}].domain", "must be a domain name such as 'light'")
        _unicode(domain, f"entities[{i}].domain")
        area = _optional_ref(item.get("area"), f"entities[{i}].area")
        if area is not None and area not in area_ids:
            raise _fail(f"entities[{i}].area", f"unknown area id {area!r}")
        device_class = _optional_ref(item.get("device_class"), f"entities[{i}].device_class")
        entities.append(Entity(id=ident, name=_name(item.get("name"), f"entities[{i}].name"),
                               domain=domain, aliases=_aliases(item.get("aliases"),
                                                               f"entities[{i}].aliases"),
                               area=area, device_class=device_class))
    _check_unique([e.id for e in entities], "entities")

    sentences: list[str] = []
    for i, raw in enumerate(_list(root, "sentences", MAX_SENTENCES, required=False)):
        if not isinstance(raw, str) or not raw.strip():
            raise _fail(f"sentences[{i}]", "must be a non-empty string")
        if len(raw) > 500:
            raise _fail(f"sentences[{i}]", "must be at most 500 characters")
        _unicode(raw, f"sentences[{i}]")
        sentences.append(raw.strip())

    polite = root.get("polite", False)
    if not isinstance(polite, bool):
        raise _fail("polite", "must be true or false")

    return Vocabulary(language=base_language, areas=tuple(areas), floors=tuple(floors),
                      entities=tuple(entities), sentences=tuple(sentences), polite=polite)

