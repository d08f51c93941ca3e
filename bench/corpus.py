"""The bench's test set in one place: voices, THE SPLIT, sentences, conditions, rendered audio.

Owns: every voice the bench speaks with (espeak-ng's English voices with male and female
variants, flite, festival) and its voice group; the fixed split of voices, homes and non-command
sentences into TUNING and HELD-OUT; the conditions (clean, pink noise, babble, music-like noise,
reverberation, a far-away speaker; noises at 20 / 10 / 5 dB SNR) and the seeded rotation that gives
each (voice, sentence) one condition and speed; and the on-disk cache of rendered audio under
bench/out/corpus/ keyed by a hash of everything that made the file (synthetic speech only).
`samples(split, seed)` is the interface both runners (bench/accuracy_bench.py) and
bench/tune_offline.py use; homes and their commands come from bench/homes.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audio_mix import TAIL, read_wav, render, speak, write_wav  # noqa: E402
from homes import Home, build_homes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench/out/corpus"
VERSION = 1  # bump when rendering changes: every cached file is then made again
DEFAULT_SEED = 16


@dataclass(frozen=True)
class Voice:
    id: str  # e.g. "espeak:en-us+f3", "flite:slt", "festival:kal"
    synth: str  # espeak-ng | flite | festival
    name: str  # what the synthesizer is given
    group: str  # the voice group the report is broken down by


def _v(synth: str, name: str, group: str) -> Voice:
    short = {"espeak-ng": "espeak"}.get(synth, synth)
    return Voice(f"{short}:{name}", synth, name, group)


# ---------------------------------------------------------------------------------------------
# THE SPLIT. Fixed once (issue 16) and never changed, never tuned on: no threshold, weight, rule,
# pronunciation or word list may be chosen by looking at results on HELD_OUT voices, homes or
# non-command sentences. Tune on TUNING only; report HELD_OUT separately, as a final figure.
# ---------------------------------------------------------------------------------------------
TUNING_VOICES: tuple[Voice, ...] = (
    _v("espeak-ng", "en-us", "US"),
    _v("espeak-ng", "en-us+f3", "US"),
    _v("espeak-ng", "en-us+m3", "US"),
    _v("espeak-ng", "en", "British"),  # en = en-gb
    _v("espeak-ng", "en-gb+f2", "British"),
    _v("espeak-ng", "en-gb-x-rp", "RP"),
    _v("espeak-ng", "en-gb-scotland", "Scottish"),
    _v("espeak-ng", "en-029", "Caribbean"),
    _v("flite", "slt", "other-synth US"),
    _v("flite", "rms", "other-synth US"),
)
HELDOUT_VOICES: tuple[Voice, ...] = (
    _v("espeak-ng", "en-us-nyc", "New York"),
    _v("espeak-ng", "en-us+f4", "US"),
    _v("espeak-ng", "en-us+m7", "US"),
    _v("espeak-ng", "en-gb-x-gbclan", "Northern/Midlands English"),  # Lancaster
    _v("espeak-ng", "en-gb-x-gbcwmd", "Northern/Midlands English"),  # West Midlands
    _v("espeak-ng", "en-gb-scotland+f3", "Scottish"),
    _v("espeak-ng", "en-029+f2", "Caribbean"),
    _v("espeak-ng", "en-gb-x-rp+f4", "RP"),
    _v("flite", "awb", "other-synth Scottish"),
    _v("flite", "kal16", "other-synth US"),
    _v("festival", "kal", "other-synth US"),
)
TUNING_HOMES: tuple[str, ...] = ("acc", "flat", "family", "big")
HELDOUT_HOMES: tuple[str, ...] = ("cottage",)

TUNING_NON_COMMANDS: tuple[str, ...] = (
    # the accuracy bench's originals
    "i think we should order pizza tonight", "did you remember to call your mother",
    "the weather was lovely at the beach yesterday", "can you pass me the salt please",
    "my favourite film is about a lighthouse keeper", "we are going to be late for the train",
    "have you seen my keys anywhere", "the children are playing in the garden",
    "this soup needs a little more pepper", "let us watch something funny later",
    "i finished reading that book about bees", "the meeting moved to thursday afternoon",
    # the sentences that were acted on, and others that share words with commands
    "can you remember to call grandma on sunday", "my favourite book has a green cover",
    "the weather was lovely yesterday afternoon", "the light in the kitchen was lovely this morning",
    "remember to set the table for five", "we need a new lock for the shed",
    "turn left at the end of the road", "the kids were up until ten last night",
    "she paid forty pounds for that lamp", "open your mouth and say ah",
    "the timer on the oven is broken", "what a lovely shade of blue",
    "it took us twenty minutes to find a parking space", "my brother is turning thirty next week",
    "close your eyes and go to sleep", "the door was open when we got home",
    "i set my alarm for seven tomorrow", "it is fifty miles to the coast",
    "the music was far too loud at the party", "we watched two films in the living room",
    "the heating bill was huge this winter", "they painted the bedroom a pale yellow",
    "grandpa fell asleep in front of the television", "i read three chapters before bed",
    "the garage is full of old boxes", "can you believe it is already december",
    "the cat is sleeping on the sofa again", "we should switch to a cheaper energy company",
    "put the kettle on the list for the shop", "how was your day at school",
)
HELDOUT_NON_COMMANDS: tuple[str, ...] = (
    # tune_offline.py's held-out sentences
    "we should paint the fence before winter", "my brother bought a new bicycle",
    "the dentist appointment is on monday", "could you believe how cold it was",
    "the neighbours are having a party", "i lost my umbrella on the bus",
    "she plays the piano every evening", "the library closes at six",
    "that movie was far too long", "grandma sent us a postcard from spain",
    "the printer ran out of ink again", "we need more eggs and bread",
    # sharing words with commands
    "the lamp in the hall belonged to my aunt", "set the alarm clock back an hour in october",
    "remind me what time the match starts", "the blinds in the old house were always broken",
    "we locked ourselves out of the car last week", "i paid twenty five pounds for the fan",
    "the speaker at the conference was very boring", "the temperature dropped to five degrees overnight",
    "turn the page and read the next paragraph", "the front door needs a new coat of paint",
    "open the window a little if you are warm", "the toaster burnt my bread again",
    "she switched jobs in the spring", "my timer for the eggs went off twice",
    "our thermostat is older than my children", "the fireplace was lovely and warm",
    "he never minds when we are late", "a fifteen minute walk to the station",
    "the greenhouse tomatoes are nearly ripe", "cancel the newspaper while we are away",
    "the cloakroom smells of wet coats", "my sister painted the parlour green",
    "start with the easy questions first", "we ran ninety minutes without a break",
    # issue 24: sharing words with the held-out home's names, and with numbers (written before
    # any run of the verdict or the open ear; never tuned on)
    "rosie read two chapters by the light of the fireplace", "the wine cellar holds forty bottles",
    "harvey bought his lamp for thirty pounds", "the greenhouse fan cost us sixty pounds in june",
    "we kept three boots in the boot room for the kids", "the garage door was painted twenty years ago",
    "tilly has been reading since she was four", "the loft bedroom sleeps two people at most",
    "arthur left his lamp at the annex in nineteen ninety", "the toaster takes five minutes to warm up",
    "the scullery blinds are older than the two of us", "the bose speaker was half price on friday",
    "ten people squeezed into the front parlour", "the robot hoover got stuck three times today",
    "the side gate lock broke after eight years", "the thermostat on the ground floor says nineteen",
    "the cloakroom spotlights took an hour to fit", "we planted fifty tomatoes in the greenhouse",
    "the heater in the wine cellar is from nineteen eighty", "the ceiling light over the island has six bulbs",
)
# ---------------------------------------------------------------------------------------------

# babble: other people talking (never a command, never a non-command of either list)
BABBLE_SENTENCES: tuple[str, ...] = (
    "and then she told me the whole story from the beginning", "no i said it was on the other side",
    "well it depends on what time they get here", "honestly i have no idea where he went",
    "the price of everything has gone up again", "we could try the new place on the high street",
    "he kept talking about his holiday in greece", "that reminds me of something my uncle said",
)

# (condition, SNR): the rotation each (voice, sentence) is given one of; clean twice as often
CONDITIONS: tuple[tuple[str, float | None], ...] = (
    ("clean", None), ("clean", None),
    ("pink", 20.0), ("pink", 10.0), ("pink", 5.0),
    ("babble", 20.0), ("babble", 10.0), ("babble", 5.0),
    ("music", 20.0), ("music", 10.0), ("music", 5.0),
    ("reverb", None), ("far", 20.0),
)
SPEEDS = (130, 200)  # words per minute, drawn per sample


def label(condition: str, snr: float | None) -> str:
    """'clean', 'pink 10 dB', 'reverb', 'far (20 dB room noise)'."""
    if snr is None:
        return condition
    return f"far ({snr:g} dB room noise)" if condition == "far" else f"{condition} {snr:g} dB"


def voices(split: str) -> tuple[Voice, ...]:
    return {"tuning": TUNING_VOICES, "heldout": HELDOUT_VOICES,
            "all": TUNING_VOICES + HELDOUT_VOICES}[split]


def voice_by_id(ident: str) -> Voice:
    for v in TUNING_VOICES + HELDOUT_VOICES:
        if v.id == ident or v.name == ident:
            return v
    raise KeyError(ident)


def _key(*parts: Any) -> str:
    blob = json.dumps([VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def clean_path(voice: Voice, text: str, wpm: int) -> Path:
    """The cached clean recording of `text` by `voice` at `wpm` (made on first use)."""
    path = CACHE / "clean" / f"{_key('clean', asdict(voice), text, wpm)}.wav"
    if not path.exists():
        speak(voice.synth, voice.name, text, wpm, path)
    return path


@dataclass
class Sample:
    """One utterance of the test set (to JSON with `asdict`)."""

    id: str
    split: str
    home: str
    satellite_area: str
    text: str
    command: bool
    expected: tuple[str, list[str], dict[str, Any]] | None
    kind: str
    voice: str
    group: str
    wpm: int
    condition: str  # clean | pink | babble | music | reverb | far
    snr: float | None
    path: str = ""  # rendered audio (after `render_sample`)
    clean: str = ""  # the clean recording it was made from
    end_of_speech: float = 0.0  # seconds into the file where the clean speech ends

    @property
    def label(self) -> str:
        return label(self.condition, self.snr)


def _items(split: str, homes: dict[str, Home]) -> list[tuple[str, Home, str, bool, Any, str]]:
    """(split, home, text, is_command, expected, kind) for every sentence of `split`."""
    out: list[tuple[str, Home, str, bool, Any, str]] = []
    for part in (("tuning", "heldout") if split == "all" else (split,)):
        home_keys = TUNING_HOMES if part == "tuning" else HELDOUT_HOMES
        for key in home_keys:
            out += [(part, homes[key], c.text, True, c.expected(), c.kind) for c in homes[key].commands]
        nons = TUNING_NON_COMMANDS if part == "tuning" else HELDOUT_NON_COMMANDS
        # non-commands are heard by every home's bridge: spread them over the split's homes
        for i, text in enumerate(nons):
            out.append((part, homes[home_keys[i % len(home_keys)]], text, False, None, "non-command"))
    return out


def samples(split: str = "tuning", seed: int = DEFAULT_SEED, all_conditions: int = 0) -> list[Sample]:
    """Every sample of `split` (tuning | heldout | all), not yet rendered.

    Each (voice, sentence) is given one condition by a seeded rotation (every condition spread
    over voices and sentences) and one speed in SPEEDS. With `all_conditions` N > 0, the first N
    sentences of the seeded order get every condition instead (a full matrix on a subset)."""
    homes = build_homes(seed)
    items = _items(split, homes)
    rng = random.Random(f"{seed}:order")
    order = list(range(len(items)))
    rng.shuffle(order)
    rank = {index: r for r, index in enumerate(order)}
    out: list[Sample] = []
    for part in (("tuning", "heldout") if split == "all" else (split,)):
        for v_index, voice in enumerate(voices(part)):
            offset = random.Random(f"{seed}:{voice.id}").randrange(len(CONDITIONS))
            for i, (item_split, home, text, is_command, expected, kind) in enumerate(items):
                if item_split != part:
                    continue
                r = rank[i]
                conds = (CONDITIONS[1:] if all_conditions and r < all_conditions
                         else [CONDITIONS[(r + offset + v_index * 5) % len(CONDITIONS)]])
                wpm = random.Random(f"{seed}:{voice.id}:{text}").randint(*SPEEDS)
                for condition, snr in conds:
                    ident = _key("sample", voice.id, text, home.key, condition, snr, wpm, seed)[:12]
                    out.append(Sample(ident, part, home.key, home.satellite_area, text, is_command,
                                      expected, kind, voice.id, voice.group, wpm, condition, snr))
    return out


def pick(items: list[Sample], sample: int = 0, limit: int = 0, seed: int = DEFAULT_SEED) -> list[Sample]:
    """A seeded random subset of `sample` items (order kept), then the first `limit`."""
    if sample and sample < len(items):
        chosen = set(random.Random(f"{seed}:pick:{sample}").sample(range(len(items)), sample))
        items = [s for i, s in enumerate(items) if i in chosen]
    return items[:limit] if limit else items


def render_sample(s: Sample, seed: int = DEFAULT_SEED, fresh_noise: bool = False) -> Sample:
    """Synthesize (cached) and mix (cached unless `fresh_noise`) `s`; fills path/clean/end_of_speech."""
    voice = voice_by_id(s.voice)
    clean = clean_path(voice, s.text, s.wpm)
    x = read_wav(clean)
    s.clean, s.end_of_speech = str(clean), round(len(x) / 16000 - TAIL, 3)
    if s.condition == "clean":
        s.path = str(clean)
        return s
    talkers: list[str] = []
    if s.condition == "babble":  # other voices of the same split, other sentences
        pool = [v for v in voices(s.split) if v.id != s.voice]
        r = random.Random(f"{seed}:babble:{s.id}")
        talkers = [f"{v.id}|{t}" for v, t in zip(r.sample(pool, 3), r.sample(BABBLE_SENTENCES, 3))]
    noise_seed = int(_key("noise", s.id, seed)[:8], 16)
    if fresh_noise:
        noise_seed = random.SystemRandom().randrange(2**32)
    name = _key("mix", str(clean), s.condition, s.snr, talkers, noise_seed)
    path = CACHE / ("fresh" if fresh_noise else "mixed") / f"{name}.wav"
    if not path.exists():
        audio = [read_wav(clean_path(voice_by_id(t.split("|")[0]), t.split("|")[1], 160)) for t in talkers]
        write_wav(path, render(x, s.condition, s.snr, np.random.default_rng(noise_seed), audio))
    s.path = str(path)
    return s

