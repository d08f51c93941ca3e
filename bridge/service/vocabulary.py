"""The vocabulary swap: the home's names in, a compiled grammar in every decoder worker out.

The first vocabulary comes from the configuration (a file, an inline mapping, or the demo home);
later ones arrive retained on `<prefix>/bridge/vocabulary/set` from Home Assistant. Each is
compiled in a one-shot child process (the event loop never stalls) and swapped into every worker
between utterances; a broken one is rejected with a clear error on `vocabulary/state` and the old
one keeps serving.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from ..protocol.hearth import ProtocolError, loads_json
from ..protocol.messages import VocabularyState
from ..recognition import CompiledGrammar, Vocabulary, VocabularyError, parse_vocabulary
from ..resources import load_demo_vocabulary
from ..stt.compiler import compile_in_subprocess
from ..stt.pool import DecoderPool
from .outbox import Outbox

_LOGGER = logging.getLogger("bridge")

type ReportError = Callable[[str, str, str | None, str | None, str | None], None]


def initial_vocabulary(source: str | Mapping[str, object] | None) -> Vocabulary:
    """The configured vocabulary: None = the demo home, a path, or the vocabulary itself."""
    if source is None:
        return load_demo_vocabulary()
    if isinstance(source, str):
        path = Path(source)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise VocabularyError(f"vocabulary file {path}: {err}") from None
        return parse_vocabulary(data)
    return parse_vocabulary(dict(source))


class VocabularySwap:
    """Owns the vocabulary in service and its published state."""

    def __init__(self, pool: DecoderPool, outbox: Outbox, report_error: ReportError) -> None:
        self.pool = pool
        self.outbox = outbox
        self._report_error = report_error
        self.vocabulary: Vocabulary | None = None
        self.grammar: CompiledGrammar | None = None
        self.state: VocabularyState | None = None
        self._serving: VocabularyState | None = None  #: the state of the vocabulary in service ("ok")
        self._waiting: Vocabulary | None = None  #: the latest vocabulary sent while one compiles
        self._lock = asyncio.Lock()

    async def start(self, source: str | Mapping[str, object] | None) -> None:
        """Compiles the configured vocabulary and starts the decoder workers with it."""
        vocab = initial_vocabulary(source)
        grammar, seconds = await compile_in_subprocess(vocab)
        self.vocabulary, self.grammar = vocab, grammar
        self._set_state(vocab, grammar, seconds)
        await self.pool.start(vocab, grammar)

    async def apply_payload(self, payload: bytes) -> bool:
        try:
            vocab = parse_vocabulary(loads_json(payload, "vocabulary"))
        except ProtocolError as err:
            self.rejected(err.message)
            return False
        except VocabularyError as err:
            self.rejected(str(err))
            return False
        return await self.apply(vocab)

    async def apply(self, vocab: Vocabulary) -> bool:
        """Compiles in the background, then swaps atomically; in-flight utterances finish on the old one.

        One vocabulary compiles at a time, and only the latest sent meanwhile waits for it: one
        sent while another waits replaces it (the retained topic's last word is the one that
        counts). A flood of vocabularies thus costs one compile and one waiting vocabulary, not a
        compile, a grammar load in every worker and a vocabulary held in memory for each. True
        when this vocabulary (or, if it was replaced while waiting, a later one) is in service.
        """
        self._waiting = vocab
        if self._lock.locked():
            return False  # the apply in progress takes the latest waiting one next
        async with self._lock:
            ok = False
            while self._waiting is not None:
                vocab, self._waiting = self._waiting, None
                ok = await self._apply_one(vocab)
            return ok

    async def _apply_one(self, vocab: Vocabulary) -> bool:
        """One vocabulary: compiled and swapped in, or rejected (the old one keeps serving)."""
        if self.vocabulary is not None and vocab.hash() == self.vocabulary.hash():
            # Nothing to compile; but a rejected vocabulary since may have left the state at
            # "error": the one in service being sent again clears it.
            if self._serving is not None and self.state != self._serving:
                self.state = self._serving
                self.outbox.send(self.outbox.topics.vocabulary_state, self.state, retain=True)
            return True
        try:
            grammar, seconds = await compile_in_subprocess(vocab)
            await self.pool.set_grammar(vocab, grammar)
        except Exception as err:  # noqa: BLE001 - keep the old grammar in service
            self.rejected(f"vocabulary could not be compiled: {type(err).__name__}: {err}")
            return False
        self.vocabulary, self.grammar = vocab, grammar
        self._set_state(vocab, grammar, seconds)
        _LOGGER.info("Vocabulary %s in service: %d entities, %d areas (compiled in %.2f s)",
                     vocab.hash()[:8], len(vocab.entities), len(vocab.areas), seconds)
        return True

    def rejected(self, message: str) -> None:
        self._report_error("bad_vocabulary", message, None, None, self.outbox.topics.vocabulary_set)
        self.state = dataclasses.replace(self.state or VocabularyState("error"), status="error", error=message)
        self.outbox.send(self.outbox.topics.vocabulary_state, self.state, retain=True)

    def republish(self) -> None:
        if self.state is not None:
            self.outbox.send(self.outbox.topics.vocabulary_state, self.state, retain=True)

    def _set_state(self, vocab: Vocabulary, grammar: CompiledGrammar, seconds: float) -> None:
        self.state = VocabularyState(
            status="ok", hash=vocab.hash(), error=None, entities=len(vocab.entities), areas=len(vocab.areas),
            floors=len(vocab.floors), sentences=len(vocab.sentences), compile_seconds=seconds,
            grammar={k: v for k, v in grammar.stats.items() if isinstance(v, (int, float, str))})
        self._serving = self.state
        self.outbox.send(self.outbox.topics.vocabulary_state, self.state, retain=True)
