"""Decoder worker process: `python -m bridge.stt.worker`.

pocketsphinx holds the GIL while it decodes, so decoding in a thread would stall the event loop
and every other satellite with it. Each worker is a separate process that owns one decoder, gets
audio as it arrives (so almost nothing is left to do at end of speech), and also runs intent
recognition, right after decoding, so the transcript and its intent come back in one answer and
hassil's matching never runs on the event loop either. Text longer than `--max-intent-text`
characters (`limits.max_intent_text`) is not matched: hassil's time grows with the square of the
length; the bridge refuses such text before it is sent, and a transcript that long stands without
its intent (`intent_error`).

The messages (bridge.stt.messages) are framed over stdin/stdout, a private pipe between the bridge
and its own child (nothing else can write to it).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, BinaryIO

from ..engines import IntentResult, SlotValue
from ..recognition.intents import MAX_INTENT_TEXT, intent_text_problem
from ..recognition.verdict import Hearing, Outcome, Verdict, VerdictSettings, decide
from .messages import (
    Audio,
    CancelUtterance,
    Compile,
    Compiled,
    EndUtterance,
    Exit,
    Failed,
    GrammarLoaded,
    IntentRecognized,
    LoadGrammar,
    MessageError,
    Partial,
    Prime,
    Ready,
    RecognizeIntent,
    StartUtterance,
    ToWorker,
    UtteranceResult,
    decode_to_worker,
    read_body,
    write_message,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..recognition import GrammarDecoder, IntentMatch, IntentRecognizer
    from ..recognition.closecall import Reviewer
    from ..recognition.decoder import DecodeResult
    from ..recognition.openear import OpenEar
    from ..recognition.scoring import UtteranceScore


def intent_result(match: IntentMatch | None) -> IntentResult | None:
    """A hassil match as the bridge publishes it."""
    if match is None:
        return None
    return IntentResult(
        name=match.name, confidence=match.confidence, sensitive=match.sensitive, broad=match.broad,
        unsure=match.unsure, slots=tuple(SlotValue(name, slot.value, slot.text, tuple(slot.entity_ids))
                    for name, slot in match.slots.items()),
    )


def _recognize(intents: IntentRecognizer | None, text: str, area: str | None,
               review: Callable[[IntentMatch], IntentMatch] | None = None,
               ) -> tuple[IntentResult | None, float]:
    """The intent of `text` (judged by `review`, if given) and the CPU seconds it took."""
    started = time.process_time()
    match = intents.recognize(text, area_id=area) if intents is not None else None
    if match is not None and review is not None:
        match = review(match)
    return intent_result(match), time.process_time() - started


def release_freed_memory() -> bool:
    """Hands memory freed since the last call back to the system; True if the C library could.

    A grammar swap builds a new pocketsphinx decoder (with its acoustic model), intent recognizer
    and close-call reviewer, and frees the old ones. Nothing of them is kept, but glibc keeps freed
    heap pages for reuse: without this a worker's resident memory stays at the high-water mark of
    every grammar it ever loaded (measured in docs/benchmarks.md, "Memory after hostile
    messages"). Called after each swap (rare: one vocabulary compiles at a time, the bridge keeps
    only the latest waiting one); elsewhere than glibc it only collects garbage.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc's, in the process already (not musl's)
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def fit_difference(grammar: UtteranceScore, heard: UtteranceScore) -> float | None:
    """How much better the open ear's path fits the audio than the grammar's: both paths' scores
    over the same frames, from the start to where the grammar's last word begins (an endpointer
    that ends a whole command early cuts that word short, and the grammar must finish it while
    the open ear need not), per frame of the grammar's words before it (the silence before them
    fits both equally and would only dilute the difference). None without both paths."""
    if not grammar.words or not grammar.frame_scores or not heard.frame_scores:
        return None
    first, cutoff = grammar.words[0][1], grammar.words[-1][1]
    if cutoff - first < 10:  # one word: compare the whole path
        cutoff = grammar.words[-1][2] + 1
    gap = grammar.score_before(cutoff) - heard.score_before(cutoff)
    return round(gap / max(1, cutoff - first), 5)


def _json(intent: IntentResult) -> dict[str, object]:
    return {**intent.to_json(), **({"unsure": intent.unsure} if intent.unsure else {})}


def hear(decoder: GrammarDecoder, result: DecodeResult, intents: IntentRecognizer | None,
         reviewer: Reviewer | None, open_ear: OpenEar | None, area: str | None,
         settings: VerdictSettings, intent_error: str | None = None,
         ) -> tuple[Verdict, IntentResult | None, float, Hearing]:
    """The verdict on the utterance `decoder` just finished (`result`), the intent to publish
    with it, the CPU seconds of intent matching, the close-call review and the comparison, and
    the hearing it was decided from.

    The intent is matched when the decoder accepted the text or rejected it only for its score
    (a harmless intent may still be acted on: :func:`decide`); the close-call review and the open
    ear's comparison run only for text the decoder accepted."""
    open_text = open_ear.finish() if open_ear is not None else None
    started = time.process_time()
    reason = result.reject_reason if result.rejected else None
    match: IntentMatch | None = None
    if intents is not None and result.text and intent_error is None and reason in (None, "score"):
        match = intents.recognize(result.text, area_id=area)
    alternatives: tuple[dict[str, object], ...] = ()
    comparison = None
    fit_gap: float | None = None
    if match is not None and reason is None:
        if reviewer is not None:
            match = reviewer.bind(decoder, result.confidence)(match)
            rival = reviewer.last.rival
            other = intents.recognize(rival, area_id=area) if rival and intents is not None else None
            rival_result = intent_result(other)
            if rival_result is not None:
                alternatives = (rival_result.to_json(),)
        if open_text is not None and open_ear is not None:
            from ..recognition.openear import compare
            comparison = compare(result.text, open_text, open_ear.phones)
            fit_gap = fit_difference(decoder.last_score, open_ear.last_score)
    intent = intent_result(match)
    hearing = Hearing(
        result.text, result.confidence, _json(intent) if intent is not None else None, reason,
        open_text=open_text, alternatives=alternatives, unsure=intent.unsure if intent else None,
        open_agreement=comparison.agreement if comparison else None, open_fit_gap=fit_gap,
        open_opposite=comparison.opposite if comparison else False,
        open_broad_missing=comparison.broad_missing if comparison else False,
        detail=comparison.detail if comparison else "")
    verdict = decide(hearing, settings)
    if reason is not None and verdict.outcome is Outcome.REFUSE:
        intent = None  # rejected by the decoder: nothing to report beyond the rejection
    matched = intents is not None and result.text and intent_error is None and reason in (None, "score")
    return verdict, intent, time.process_time() - started if matched else 0.0, hearing


def serve(inp: BinaryIO, out: BinaryIO, max_text: int = MAX_INTENT_TEXT, open_ear: bool = True) -> None:
    from bridge.recognition import CompiledGrammar, GrammarDecoder, IntentRecognizer, Vocabulary
    from bridge.recognition.closecall import Reviewer
    from bridge.recognition.openear import OpenEar

    decoder: GrammarDecoder | None = None
    ear: OpenEar | None = None
    intents: IntentRecognizer | None = None
    reviewer: Reviewer | None = None
    pending: LoadGrammar | None = None
    active: str | None = None
    complete = False
    write_message(out, Ready(os.getpid()))

    def apply(vocab: Vocabulary, grammar: CompiledGrammar) -> None:
        nonlocal decoder, intents, reviewer, ear
        started = time.monotonic()
        if decoder is None:
            from bridge.resources import decoder_inputs  # the model, word list and temp files
            decoder = GrammarDecoder(grammar, decoder_inputs())
            if open_ear:
                from bridge.resources import new_open_ear
                decoder.follower = ear = new_open_ear()
        else:
            decoder.set_grammar(grammar)
        intents = IntentRecognizer(vocab)
        reviewer = Reviewer(vocab)  # close calls: a second pass over the meaning's words
        intents.recognize("what time is it")  # warm up: hassil's first match builds its caches
        release_freed_memory()  # the previous grammar's decoder, recognizer and reviewer
        write_message(out, GrammarLoaded(grammar.hash, time.monotonic() - started))

    def end(message: EndUtterance, decoder: GrammarDecoder) -> None:
        result = decoder.finish()
        intent_error = intent_text_problem(result.text, max_text)
        settings = message.settings or VerdictSettings()
        try:
            verdict, intent, intent_cpu, _ = hear(decoder, result, intents, reviewer, ear,
                                                  message.area, settings, intent_error)
        except Exception as err:  # noqa: BLE001 - the transcript stands without its intent
            traceback.print_exc(file=sys.stderr)
            intent_error = f"{type(err).__name__}: {err}"
            verdict, intent, intent_cpu = None, None, 0.0
        # Text the decoder accepted that no intent matches stays a transcript (an answer to a
        # question, a Hermes client's own NLU); the verdict refuses what it matched and doubts.
        rejected = (result.rejected if verdict is None or verdict.reason == "no_intent"
                    else verdict.outcome is Outcome.REFUSE)
        write_message(out, UtteranceResult(
            message.utterance, result.text, result.confidence, rejected, result.audio_seconds,
            result.cpu_seconds, intent, intent_cpu, intent_error, verdict,
            ear.cpu_seconds if ear is not None else 0.0))

    while True:
        try:
            message: ToWorker = decode_to_worker(read_body(inp))
        except EOFError:
            return
        except MessageError as err:
            write_message(out, Failed(None, f"malformed message: {err}"))
            continue
        try:
            match message:
                case LoadGrammar(vocab, grammar):
                    if active is None:
                        apply(vocab, grammar)
                    else:
                        pending = message
                case StartUtterance(utterance):
                    if decoder is None:
                        write_message(out, Failed(utterance, "no grammar loaded"))
                        continue
                    active = utterance
                    complete = False
                    decoder.start()
                case Prime(utterance, pcm):
                    if utterance == active and decoder is not None:
                        decoder.prime(pcm)
                case Audio(utterance, pcm):
                    if utterance == active and decoder is not None:
                        decoder.feed(pcm)
                        now_complete = decoder.is_complete()
                        if now_complete != complete:
                            complete = now_complete
                            write_message(out, Partial(utterance, complete))
                case EndUtterance(utterance) | CancelUtterance(utterance):
                    if utterance == active and decoder is not None:
                        active = None
                        if isinstance(message, EndUtterance):
                            end(message, decoder)
                        else:
                            decoder.finish()
                            if ear is not None:
                                ear.cancel()
                        if pending is not None:
                            load, pending = pending, None
                            apply(load.vocabulary, load.grammar)
                case RecognizeIntent(request, text, area):
                    problem = intent_text_problem(text, max_text)
                    if problem is not None:
                        write_message(out, Failed(request, problem))
                        continue
                    intent, cpu = _recognize(intents, text, area)
                    write_message(out, IntentRecognized(request, intent, cpu))
                case Exit():
                    return
                case Compile():
                    write_message(out, Failed(None, "compile requests go to a --compile worker"))
        except Exception as err:  # noqa: BLE001 - report, keep serving
            traceback.print_exc(file=sys.stderr)
            ident = getattr(message, "utterance", None) or getattr(message, "request", None)
            if isinstance(message, (StartUtterance, Audio, EndUtterance)):
                active = None
            write_message(out, Failed(ident, f"{type(err).__name__}: {err}"))


def compile_once(inp: BinaryIO, out: BinaryIO) -> None:
    """`--compile`: one vocabulary in, its compiled grammar out, then exit (nothing lingers)."""
    from bridge.recognition import compile_grammar
    from bridge.resources import cmudict

    try:
        message = decode_to_worker(read_body(inp))
    except (EOFError, MessageError) as err:
        write_message(out, Failed(None, f"no vocabulary to compile: {err or 'end of input'}"))
        return
    if not isinstance(message, Compile):
        write_message(out, Failed(None, f"expected a vocabulary to compile, got {message.KIND!r}"))
        return
    started = time.monotonic()
    try:
        grammar = compile_grammar(message.vocabulary, cmudict())
    except Exception as err:  # noqa: BLE001 - reported to the bridge, which keeps its old grammar
        write_message(out, Failed(None, f"{type(err).__name__}: {err}"))
        return
    write_message(out, Compiled(grammar, time.monotonic() - started))


def main() -> None:
    # Keep the protocol pipe private: anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    args = sys.argv[1:]
    if "--compile" in args:
        compile_once(inp, out)
        return
    max_text = MAX_INTENT_TEXT
    if "--max-intent-text" in args:
        max_text = int(args[args.index("--max-intent-text") + 1])
    serve(inp, out, max_text, open_ear="--no-open-ear" not in args)


if __name__ == "__main__":
    main()
