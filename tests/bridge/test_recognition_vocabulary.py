"""Vocabulary validation: every bad case is rejected with a message naming the field."""

from __future__ import annotations

import copy
import pickle

import pytest

from bridge.recognition import Vocabulary, VocabularyError, parse_vocabulary
from bridge.resources import load_demo_vocabulary

GOOD = {
    "language": "en",
    "areas": [{"id": "kitchen", "name": "Kitchen", "aliases": ["cookhouse"], "floor": "ground"}],
    "floors": [{"id": "ground", "name": "Ground floor", "aliases": []}],
    "entities": [{"id": "light.kitchen", "name": "Kitchen light", "aliases": ["ceiling light"],
                  "domain": "light", "area": "kitchen", "device_class": None}],
    "sentences": ["what is the weather like"],
}


def _with(path: list[object], value: object) -> dict[str, object]:
    data = copy.deepcopy(GOOD)
    target: object = data
    for key in path[:-1]:
        target = target[key]  # type: ignore[index]
    if value is _DELETE:
        del target[path[-1]]  # type: ignore[attr-defined,index]
    else:
        target[path[-1]] = value  # type: ignore[index]
    return data


_DELETE = object()


def test_protocol_example_parses() -> None:
    vocab = parse_vocabulary(GOOD)
    assert isinstance(vocab, Vocabulary)
    assert vocab.entities[0].aliases == ("ceiling light",)
    assert vocab.areas[0].floor == "ground"
    assert vocab.sentences == ("what is the weather like",)
    assert pickle.loads(pickle.dumps(vocab)) == vocab


def test_hash_is_stable_and_content_based() -> None:
    assert parse_vocabulary(GOOD).hash() == parse_vocabulary(copy.deepcopy(GOOD)).hash()
    other = _with(["entities", 0, "name"], "Stove light")
    assert parse_vocabulary(other).hash() != parse_vocabulary(GOOD).hash()


@pytest.mark.parametrize(("path", "value", "message"), [
    (["language"], _DELETE, "language: is required"),
    (["language"], "de", "language: unsupported language 'de'"),
    (["areas"], _DELETE, "areas: is required"),
    (["entities"], _DELETE, "entities: is required"),
    (["entities"], {"id": "x"}, "entities: must be a list"),
    (["entities", 0], "light.kitchen", "entities[0]: must be an object"),
    (["entities", 0, "name"], _DELETE, "entities[0].name: must be a non-empty string"),
    (["entities", 0, "name"], "", "entities[0].name: must be a non-empty string"),
    (["entities", 0, "name"], "   ", "entities[0].name: must be a non-empty string"),
    (["entities", 0, "name"], 42, "entities[0].name: must be a non-empty string"),
    (["entities", 0, "name"], "x" * 101, "entities[0].name: must be at most 100 characters"),
    (["entities", 0, "name"], "!!!", "entities[0].name: must contain at least one letter"),
    (["entities", 0, "id"], _DELETE, "entities[0].id: must be a non-empty string"),
    (["entities", 0, "domain"], "no such!", "entities[0].domain: must be a domain name"),
    (["entities", 0, "area"], "attic", "entities[0].area: unknown area id 'attic'"),
    (["entities", 0, "aliases"], "ceiling light", "entities[0].aliases: must be a list"),
    (["entities", 0, "aliases"], [""], "entities[0].aliases[0]: must be a non-empty string"),
    (["entities", 0, "aliases"], [f"a{i}" for i in range(21)],
     "entities[0].aliases: must have at most 20 aliases"),
    (["areas", 0, "floor"], "roof", "areas[0].floor: unknown floor id 'roof'"),
    (["areas", 0, "name"], "", "areas[0].name: must be a non-empty string"),
    (["floors", 0, "name"], None, "floors[0].name: must be a non-empty string"),
    (["sentences"], [""], "sentences[0]: must be a non-empty string"),
])
def test_bad_vocabulary_names_the_field(path: list[object], value: object, message: str) -> None:
    with pytest.raises(VocabularyError) as info:
        parse_vocabulary(_with(path, value))
    assert str(info.value).startswith(message), str(info.value)


def test_not_an_object() -> None:
    with pytest.raises(VocabularyError, match="vocabulary: must be an object"):
        parse_vocabulary(["en"])


@pytest.mark.parametrize("kind", ["entities", "areas", "floors"])
def test_duplicate_ids(kind: str) -> None:
    data = copy.deepcopy(GOOD)
    data[kind].append(copy.deepcopy(data[kind][0]))  # type: ignore[attr-defined]
    with pytest.raises(VocabularyError, match=rf"{kind}\[1\]\.id: duplicate id"):
        parse_vocabulary(data)


@pytest.mark.parametrize(("kind", "limit"), [("entities", 2000), ("areas", 500), ("floors", 100)])
def test_absurd_sizes(kind: str, limit: int) -> None:
    data = copy.deepcopy(GOOD)
    item = {"entities": {"id": "light.x", "name": "X", "domain": "light"},
            "areas": {"id": "a", "name": "A"}, "floors": {"id": "f", "name": "F"}}[kind]
    data[kind] = [dict(item, id=f"{item['id']}{i}") for i in range(limit + 1)]
    with pytest.raises(VocabularyError, match=rf"{kind}: must have at most {limit} items"):
        parse_vocabulary(data)


def test_limits_are_inclusive() -> None:
    data = copy.deepcopy(GOOD)
    data["entities"] = [{"id": f"light.l{i}", "name": f"Lamp {i}", "domain": "light"}
                        for i in range(2000)]
    assert len(parse_vocabulary(data).entities) == 2000


def test_domain_defaults_from_entity_id() -> None:
    vocab = parse_vocabulary(_with(["entities", 0, "domain"], _DELETE))
    assert vocab.entities[0].domain == "light"


def test_demo_home() -> None:
    demo = load_demo_vocabulary()
    kitchen = next(a for a in demo.areas if a.name == "Kitchen")
    assert any(e.name == "Kitchen light" and e.area == kitchen.id for e in demo.entities)
    assert {e.domain for e in demo.entities} >= {"light", "cover", "climate", "media_player", "fan"}
    assert 4 <= len(demo.areas) <= 6 and len(demo.floors) == 2


def test_polite_flag() -> None:
    plain = parse_vocabulary(GOOD)
    assert plain.polite is False
    polite = parse_vocabulary({**copy.deepcopy(GOOD), "polite": True})
    assert polite.polite is True and polite.hash() != plain.hash()
    # a vocabulary that does not mention it keeps the hash it always had
    assert parse_vocabulary({**copy.deepcopy(GOOD), "polite": False}).hash() == plain.hash()
    with pytest.raises(VocabularyError, match="^polite: must be true or false$"):
        parse_vocabulary({**copy.deepcopy(GOOD), "polite": "yes"})
