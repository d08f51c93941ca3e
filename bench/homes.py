"""The bench's homes and the commands spoken in them, generated deterministically from a seed.

Owns: the accuracy bench's hand-made home (ACC_HOME, kept as one of the tuning homes), the
generated homes (a small flat, a family house, a big house, and the held-out cottage) with their
naming styles (area-based, numbered, possessive, descriptive, product-like names, aliases, floors),
and the command generator: for each home, sentences from templates over the intents Hearth covers,
each with the expected intent, entity ids and slot values that `understood()` checks. Which homes
are tuning and which held-out is fixed in bench/corpus.py (HOME_SPLIT).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

ACC_HOME: dict[str, Any] = {
    "language": "en",
    "floors": [{"id": "main", "name": "Main floor"}, {"id": "loft", "name": "Loft", "aliases": ["attic"]}],
    "areas": [
        {"id": "pantry", "name": "Pantry", "floor": "main"},
        {"id": "sunroom", "name": "Sunroom", "aliases": ["conservatory"], "floor": "main"},
        {"id": "nursery", "name": "Nursery", "floor": "loft"},
        {"id": "workshop", "name": "Workshop", "floor": "main"},
        {"id": "dining_room", "name": "Dining room", "floor": "main"},
        {"id": "study", "name": "Study", "aliases": ["library"], "floor": "loft"},
        {"id": "porch", "name": "Porch", "floor": "main"},
        {"id": "guest_room", "name": "Guest room", "floor": "loft"},
    ],
    "entities": [
        {"id": "light.pantry", "name": "Pantry light", "domain": "light", "area": "pantry"},
        {"id": "light.aquarium", "name": "Aquarium light", "domain": "light", "area": "sunroom", "aliases": ["fish tank light"]},
        {"id": "light.night_light", "name": "Night light", "domain": "light", "area": "nursery"},
        {"id": "light.workbench", "name": "Workbench lamp", "domain": "light", "area": "workshop"},
        {"id": "light.chandelier", "name": "Chandelier", "domain": "light", "area": "dining_room"},
        {"id": "light.reading_lamp", "name": "Reading lamp", "domain": "light", "area": "study"},
        {"id": "light.porch", "name": "Porch light", "domain": "light", "area": "porch"},
        {"id": "light.guest_bedside", "name": "Bedside lamp", "domain": "light", "area": "guest_room"},
        {"id": "switch.kettle", "name": "Kettle", "domain": "switch", "area": "pantry"},
        {"id": "switch.heater", "name": "Patio heater", "domain": "switch", "area": "porch"},
        {"id": "fan.nursery", "name": "Nursery fan", "domain": "fan", "area": "nursery"},
        {"id": "cover.shed", "name": "Shed door", "domain": "cover", "area": "workshop", "device_class": "garage"},
        {"id": "cover.sunroom_blinds", "name": "Sunroom blinds", "domain": "cover", "area": "sunroom", "device_class": "blind"},
        {"id": "climate.loft", "name": "Loft thermostat", "domain": "climate", "area": "study"},
        {"id": "media_player.radio", "name": "Kitchen radio", "domain": "media_player", "area": "dining_room", "aliases": ["radio"]},
        {"id": "lock.porch_door", "name": "Porch door", "domain": "lock", "area": "porch"},
    ],
}
ACC_SATELLITE_AREA = "study"

# (areas: (name, aliases), people, products, descriptive places, entity count target, styles)
_ROOMS_TUNING = [("Kitchen", []), ("Living room", ["lounge"]), ("Bedroom", []), ("Bathroom", []),
                 ("Hallway", ["hall"]), ("Office", []), ("Dining room", []), ("Laundry room", []),
                 ("Garage", []), ("Kids room", ["playroom"]), ("Master bedroom", []),
                 ("Guest bedroom", []), ("Basement", ["cellar"]), ("Landing", []), ("Den", []),
                 ("Utility room", []), ("Garden", ["backyard"]), ("Balcony", []), ("Attic room", []),
                 ("Gym", []), ("Music room", []), ("Back porch", [])]
_ROOMS_HELDOUT = [("Snug", []), ("Boot room", ["mudroom"]), ("Scullery", []), ("Sewing room", []),
                  ("Annex", []), ("Wine cellar", []), ("Loft bedroom", []), ("Front parlour", ["parlour"]),
                  ("Greenhouse", []), ("Cloakroom", [])]
_PEOPLE_TUNING = ["Emma", "Oliver", "Sophie", "Jack", "Mia", "Leo", "Grace", "Noah"]
_PEOPLE_HELDOUT = ["Rosie", "Harvey", "Tilly", "Arthur"]
_PRODUCTS_TUNING = [("light", "Hue go"), ("light", "Nanoleaf panels"), ("light", "Lightstrip"),
                    ("media_player", "Sonos one"), ("media_player", "Echo dot"), ("fan", "Dyson fan"),
                    ("switch", "Coffee machine"), ("switch", "Dehumidifier"), ("vacuum", "Roomba")]
_PRODUCTS_HELDOUT = [("light", "Lifx bulb"), ("media_player", "Bose speaker"), ("switch", "Toaster"),
                     ("fan", "Honeywell fan"), ("vacuum", "Robot hoover")]
_PLACES_TUNING = ["over the table", "by the window", "above the sink", "next to the sofa", "under the stairs"]
_PLACES_HELDOUT = ["beside the fireplace", "over the island", "by the front door"]
_ALIASES = ["Big light", "Mood lighting", "Fairy lights", "Desk light", "Night lamp", "Corner lamp",
            "Accent light", "Cosy lamp", "Main light"]
_LIGHT_WORDS = ["light", "lamp", "ceiling light", "floor lamp", "spotlights", "wall light"]


@dataclass(frozen=True)
class HomeSpec:
    key: str
    areas: int
    lights_per_area: tuple[int, int]
    floors: tuple[str, ...]
    rooms: list[tuple[str, list[str]]]
    people: list[str]
    products: list[tuple[str, str]]
    places: list[str]
    styles: tuple[str, ...]  # name styles for lights: area | numbered | possessive | descriptive | product
    commands: int  # how many commands to draw


SPECS = [
    HomeSpec("flat", 4, (1, 2), ("Ground floor",), _ROOMS_TUNING[:8], _PEOPLE_TUNING[:2],
             _PRODUCTS_TUNING[:4], _PLACES_TUNING[:2], ("product", "area", "possessive"), 50),
    HomeSpec("family", 10, (1, 3), ("Ground floor", "First floor"), _ROOMS_TUNING, _PEOPLE_TUNING[:5],
             _PRODUCTS_TUNING, _PLACES_TUNING, ("area", "possessive", "descriptive", "numbered"), 70),
    HomeSpec("big", 20, (5, 8), ("Basement level", "Ground floor", "First floor", "Second floor"),
             _ROOMS_TUNING, _PEOPLE_TUNING, _PRODUCTS_TUNING, _PLACES_TUNING,
             ("numbered", "area", "descriptive", "product", "possessive"), 90),
    HomeSpec("cottage", 8, (1, 3), ("Ground floor", "Top floor"), _ROOMS_HELDOUT, _PEOPLE_HELDOUT,
             _PRODUCTS_HELDOUT, _PLACES_HELDOUT, ("possessive", "descriptive", "area", "product"), 90),
]


@dataclass
class Home:
    key: str
    vocab: dict[str, Any]
    satellite_area: str
    commands: list[Command] = field(default_factory=list)


@dataclass(frozen=True)
class Command:
    text: str
    intent: str
    entities: frozenset[str]
    values: tuple[tuple[str, Any], ...]
    kind: str  # template family, for coverage checks

    def expected(self) -> tuple[str, list[str], dict[str, Any]]:
        return self.intent, sorted(self.entities), dict(self.values)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def generate_home(spec: HomeSpec, seed: int) -> Home:
    """A home from `spec`: areas spread over floors, lights in every area, other devices around."""
    rng = random.Random(f"{seed}:{spec.key}")
    rooms = rng.sample(spec.rooms, min(spec.areas, len(spec.rooms)))
    floors = [{"id": _slug(f), "name": f} for f in spec.floors]
    areas = [{"id": _slug(n), "name": n, "aliases": list(al), "floor": floors[i * len(floors) // len(rooms)]["id"]}
             for i, (n, al) in enumerate(rooms)]
    entities: list[dict[str, Any]] = []
    names: set[str] = {a["name"].lower() for a in areas}

    def add(domain: str, name: str, area: str, **extra: Any) -> None:
        if name.lower() in names:
            return
        names.add(name.lower())
        entities.append({"id": f"{domain}.{_slug(name)}", "name": name, "domain": domain, "area": area, **extra})

    people = list(spec.people)
    places = list(spec.places)
    products = list(spec.products)
    rng.shuffle(products)
    for i, area in enumerate(areas):
        room = area["name"]
        for k in range(rng.randint(*spec.lights_per_area)):
            style = spec.styles[(i + k) % len(spec.styles)]
            word = rng.choice(_LIGHT_WORDS)
            if style == "possessive" and people:
                add("light", f"{people.pop(0)}'s {rng.choice(['lamp', 'light', 'reading light'])}", area["id"])
            elif style == "descriptive" and places:
                add("light", f"{word.capitalize()} {places.pop(0)}", area["id"])
            elif style == "product" and products and products[0][0] == "light":
                add("light", products.pop(0)[1], area["id"])
            elif style == "numbered":
                add("light", f"{room} light {k + 1}", area["id"])
            else:
                add("light", f"{room} {word}" if k == 0 else f"{room} {rng.choice(_LIGHT_WORDS)}", area["id"])
        if i % 3 == 1:
            add("cover", f"{room} blinds", area["id"], device_class="blind")
        if i % 4 == 2:
            add("fan", f"{room} fan", area["id"])
        if i % 5 == 0:
            add("media_player", f"{room} speaker", area["id"])
        if i % 4 == 3:
            add("switch", f"{room} heater", area["id"])
    for domain, name in products:  # the rest of the product-like names
        if domain != "light":
            add(domain, name, rng.choice(areas)["id"])
    add("lock", rng.choice(["Front door", "Back door lock", "Side gate lock"]), areas[0]["id"])
    if spec.areas > 6:
        add("lock", "Garage side door", areas[-1]["id"])
        add("cover", "Garage door", areas[-1]["id"], device_class="garage")
    for floor in floors[: max(1, len(floors) - 1)]:
        in_floor = [a for a in areas if a["floor"] == floor["id"]]
        if in_floor:
            add("climate", f"{floor['name']} thermostat", in_floor[0]["id"])
    # aliases on a few entities: what people call them besides their name
    spare = [a for a in _ALIASES if a.lower() not in names]
    rng.shuffle(spare)
    for entity in rng.sample(entities, max(1, len(entities) // 10)):
        if entity["domain"] == "light" and spare:
            alias = spare.pop()
        elif entity["domain"] == "switch" and "'" not in entity["name"]:
            alias = f"{entity['name'].split()[0]} plug"
        else:
            continue
        if alias.lower() not in names:
            entity["aliases"] = [alias]
            names.add(alias.lower())
    climate_areas = [e["area"] for e in entities if e["domain"] == "climate"]
    vocab = {"language": "en", "floors": floors, "areas": areas, "entities": entities}
    return Home(spec.key, vocab, climate_areas[0] if climate_areas else areas[0]["id"])


_COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "pink", "white"]
_PERCENTS = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100]


def _candidates(home: Home, rng: random.Random) -> dict[str, list[Command]]:
    """Every command family -> possible commands in `home` (one per entity and template)."""
    ents = home.vocab["entities"]
    areas = home.vocab["areas"]
    floors = home.vocab["floors"]
    out: dict[str, list[Command]] = {}

    def put(kind: str, text: str, intent: str, entities: set[str] | frozenset[str] = frozenset(),
            **values: Any) -> None:
        out.setdefault(kind, []).append(Command(text, intent, frozenset(entities), tuple(sorted(values.items())), kind))

    def called(e: dict[str, Any]) -> str:
        """How a sentence names `e`: "the kitchen light", but "emma's lamp" (no article)."""
        name: str = rng.choice([e["name"], *e.get("aliases", [])]).lower()
        return name if "'s " in name else f"the {name}"

    for e in ents:
        d, n = e["domain"], called(e)
        if d in ("light", "switch", "fan"):
            on = rng.choice(["turn on {}", "switch on {}", "turn {} on"])
            off = rng.choice(["turn off {}", "switch off {}", "turn {} off"])
            put("on_off_name", on.format(n), "HassTurnOn", {e["id"]})
            put("on_off_name", off.format(n), "HassTurnOff", {e["id"]})
        if d == "light":
            p = rng.choice(_PERCENTS)
            t = rng.choice(["set {} to {} percent", "set {} brightness to {} percent"])
            put("brightness", t.format(n, p), "HassLightSet", {e["id"]}, brightness=p)
            c = rng.choice(_COLORS)
            put("colour", rng.choice(["set {} to {}", "make {} {}"]).format(n, c), "HassLightSet",
                {e["id"]}, color=c)
        if d == "cover":
            put("cover", f"open {n}", "HassTurnOn", {e["id"]})
            put("cover", f"close {n}", "HassTurnOff", {e["id"]})
            p = rng.choice(_PERCENTS[1:-1])
            put("cover_position", f"set {n} to {p} percent", "HassSetPosition", {e["id"]}, position=p)
        if d == "lock":
            put("lock", f"lock {n}", "HassTurnOn", {e["id"]})
            put("lock_state", f"is {n} locked", "HassGetState", {e["id"]}, state="locked")
        if d == "media_player":
            put("media", f"pause {n}", "HassMediaPause", {e["id"]})
            put("media", f"resume {n}", "HassMediaUnpause", {e["id"]})
            put("media", f"next track on {n}", "HassMediaNext", {e["id"]})
            v = rng.choice(_PERCENTS[1:])
            put("media", f"set {n} volume to {v} percent", "HassSetVolume", {e["id"]}, volume_level=v)
        if d == "vacuum":
            put("vacuum", f"start {n}", "HassVacuumStart", {e["id"]})
    for a in areas:
        lights = {e["id"] for e in ents if e["domain"] == "light" and e["area"] == a["id"]}
        name = rng.choice([a["name"], *a.get("aliases", [])]).lower()
        if lights:
            put("on_off_area", f"turn on the lights in the {name}", "HassTurnOn", lights)
            put("on_off_area", f"turn off the lights in the {name}", "HassTurnOff", lights)
    for f in floors:
        lights = {e["id"] for e in ents if e["domain"] == "light"
                  and any(a["id"] == e["area"] and a.get("floor") == f["id"] for a in areas)}
        if lights and len(floors) > 1:
            put("on_off_floor", f"turn off the lights on the {f['name'].lower()}", "HassTurnOff", lights)
    if any(e["domain"] == "climate" for e in ents):
        put("climate", "what is the temperature", "HassClimateGetTemperature")
        for t in rng.sample(range(16, 27), 4):
            put("climate", f"set the temperature to {t} degrees", "HassClimateSetTemperature", temperature=t)
    for m in rng.sample([1, 2, 3, 4, 5, 7, 8, 10, 12, 15, 20, 25, 30, 40, 45, 50, 90], 8):
        put("timer", rng.choice(["set a timer for {} minutes", "start a timer for {} minutes"]).format(m)
            .replace("for 1 minutes", "for one minute"), "HassStartTimer", minutes=m)
    for h in (1, 2, 3):
        put("timer", f"set a timer for {h} hour{'s' if h > 1 else ''}", "HassStartTimer", hours=h)
    for s in rng.sample([10, 20, 30, 45, 90], 2):
        put("timer", f"set a timer for {s} seconds", "HassStartTimer", seconds=s)
    for t in ("cancel the timer", "stop the timer", "cancel my timer"):
        put("cancel_timer", t, "HassCancelTimer")
    for t in ("what time is it", "what's the time"):
        put("time", t, "HassGetCurrentTime")
    put("never_mind", "never mind", "HassNevermind")
    return out


# ACC_HOME's hand-written commands (the bench's commands before the generated homes)
ACC_COMMANDS: list[tuple[str, str, set[str], dict[str, Any]]] = [
    ("turn on the pantry light", "HassTurnOn", {"light.pantry"}, {}),
    ("switch on the fish tank light", "HassTurnOn", {"light.aquarium"}, {}),
    ("turn on the lights in the study", "HassTurnOn", {"light.reading_lamp"}, {}),
    ("turn off the lights in the guest room", "HassTurnOff", {"light.guest_bedside"}, {}),
    ("set the chandelier to 40 percent", "HassLightSet", {"light.chandelier"}, {"brightness": 40}),
    ("set the reading lamp brightness to 75 percent", "HassLightSet", {"light.reading_lamp"}, {"brightness": 75}),
    ("set the porch light to red", "HassLightSet", {"light.porch"}, {"color": "red"}),
    ("close the shed door", "HassTurnOff", {"cover.shed"}, {}),
    ("set the sunroom blinds to 30 percent", "HassSetPosition", {"cover.sunroom_blinds"}, {"position": 30}),
    ("is the porch door locked", "HassGetState", {"lock.porch_door"}, {}),
    ("what is the temperature", "HassClimateGetTemperature", set(), {}),
    ("set the temperature to 21 degrees", "HassClimateSetTemperature", set(), {"temperature": 21}),
    ("pause the radio", "HassMediaPause", {"media_player.radio"}, {}),
    ("next track on the radio", "HassMediaNext", {"media_player.radio"}, {}),
    ("set a timer for 5 minutes", "HassStartTimer", set(), {"minutes": 5}),
    ("cancel the timer", "HassCancelTimer", set(), {}),
    ("what time is it", "HassGetCurrentTime", set(), {}),
    ("never mind", "HassNevermind", set(), {}),
]


def _draw(home: Home, count: int, rng: random.Random, fixed: list[Command]) -> list[Command]:
    """`count` commands, families taken in turn so every intent family is covered."""
    cands = _candidates(home, rng)
    for pool in cands.values():
        rng.shuffle(pool)
    chosen = list(fixed)
    seen = {c.text for c in chosen}
    families = sorted(cands)
    while len(chosen) < count and any(cands.values()):
        for fam in families:
            while cands[fam] and cands[fam][-1].text in seen:
                cands[fam].pop()
            if cands[fam] and len(chosen) < count:
                cmd = cands[fam].pop()
                chosen.append(cmd)
                seen.add(cmd.text)
    return chosen


def build_homes(seed: int) -> dict[str, Home]:
    """Every home of the bench (ACC_HOME as "acc" plus the generated ones), with commands."""
    homes: dict[str, Home] = {}
    acc = Home("acc", ACC_HOME, ACC_SATELLITE_AREA)
    fixed = [Command(t, i, frozenset(e), tuple(sorted(v.items())), "fixed") for t, i, e, v in ACC_COMMANDS]
    acc.commands = _draw(acc, 45, random.Random(f"{seed}:acc"), fixed)
    homes["acc"] = acc
    for spec in SPECS:
        home = generate_home(spec, seed)
        home.commands = _draw(home, spec.commands, random.Random(f"{seed}:{spec.key}:commands"), [])
        homes[spec.key] = home
    return homes
