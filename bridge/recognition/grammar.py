"""Compile Home Assistant's intent templates and the home's names into a pocketsphinx FSG.

:func:`compile_grammar` runs the pipeline and returns a :class:`CompiledGrammar` (picklable, sent
to the decoder workers): **select** the templates the home can mean and expand each into an
automaton over words and list symbols (:mod:`.templates`, :mod:`.expansion`); **determinize and
minimize** their union, drop sentences that start with a name, add politeness words if the
vocabulary asks (:mod:`.automaton`); make each list a minimized sub-graph; **emit** FSG text and
a pronunciation dictionary for every token (:mod:`.fsg`). Pure: the pronunciation dictionary is
an argument (:func:`bridge.resources.cmudict` loads it); only hassil reads its packaged template
data. Measurements are in ``docs/recognition.md``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from .automaton import add_skip_words, determinize, forbid_name_first, minimize, word_graph
from .expansion import Home, join_words
from .fsg import JOIN, emit
from .pronounce import Pronouncer, Pronunciations
from .templates import (
    SKIP_PREFIXES,
    SKIP_SUFFIXES,
    STRICT_ON_OFF,
    load_intents,
    select_templates,
)
from .vocabulary import Vocabulary

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledGrammar:
    """A compiled grammar: picklable, sent to decoder worker processes."""

    hash: str
    language: str
    fsg: str
    dictionary: dict[str, tuple[str, ...]]
    stats: dict[str, object] = field(default_factory=dict)


def compile_grammar(vocab: Vocabulary, dictionary: Pronunciations) -> CompiledGrammar:
    """Compile the templates the home can mean plus its names into a :class:`CompiledGrammar`,
    pronouncing words with `dictionary` (word -> pronunciations, the CMU dictionary)."""
    started = time.process_time()
    wall = time.perf_counter()
    intents = load_intents(vocab.language)
    home = Home(vocab, Pronouncer(dictionary))
    templates = select_templates(vocab, intents, home)
    skipped = templates.skipped

    words_nfa, wstart = join_words(templates.nfa, templates.root, home)
    top = minimize(determinize(words_nfa, wstart))
    if STRICT_ON_OFF:
        top = minimize(forbid_name_first(top))
    if vocab.polite:
        top = minimize(add_skip_words(top, SKIP_PREFIXES, SKIP_SUFFIXES))
    top_states, top_arcs = len(top.arcs), top.n_arcs

    # list symbols as minimized sub-graphs
    sub = {symbol: word_graph(values) for symbol, values in templates.builder.lists.items()}

    fsg, tokens, size = emit(top, sub, home.pronouncer)
    spoken = {w for token in tokens for w in token.split(JOIN)}
    unpronounceable = sorted(home.unpronounceable)
    reasons = dict(sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])))
    stats: dict[str, object] = {
        "states": size["states"],
        "transitions": size["transitions"],
        "null_transitions": size["null_transitions"],
        "words": len(spoken),
        "tokens": len(tokens),
        "states_before_merging": size["states_before_merging"],
        "top_states": top_states,
        "top_transitions": top_arcs,
        "list_copies": size["list_copies"],
        "templates_used": templates.used,
        "templates_used_by_intent": dict(sorted(templates.used_by_intent.items())),
        "templates_needing_satellite_area": templates.needs_area,
        "templates_skipped": sum(skipped.values()),
        "templates_skipped_reasons": reasons,
        "unpronounceable": unpronounceable,
        "pronunciation_methods": dict(Counter(home.pronouncer.methods[w] for w in spoken)),
        "invented_pronunciations": {w: m for w, m in sorted(home.pronouncer.methods.items())
                                    if m != "dictionary" and w in spoken},
        "compile_seconds": round(time.perf_counter() - wall, 3),
        "compile_cpu_seconds": round(time.process_time() - started, 3),
    }
    _LOGGER.info(
        "Grammar %s: %d templates used, %d skipped (%s); %d states, %d transitions, %d words; "
        "unpronounceable names: %s; %.2f s",
        vocab.hash(), templates.used, stats["templates_skipped"],
        ", ".join(f"{k}={v}" for k, v in reasons.items()) or "none",
        stats["states"], stats["transitions"], stats["words"],
        ", ".join(unpronounceable) or "none", stats["compile_seconds"])
    return CompiledGrammar(hash=vocab.hash(), language=vocab.language, fsg=fsg,
                           dictionary=tokens, stats=stats)
