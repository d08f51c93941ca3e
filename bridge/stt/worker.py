"""Decoder worker process: `python -m bridge.stt.worker`.

pocketsphinx holds the GIL while it decodes, so decoding in a thread would stall the event loop
and every other satellite with it. Each worker is a separate process that owns one decoder, gets
audio as it arrives (so almost nothing is left to do at end of speech), and also runs intent
recognition so hassil's matching never runs on the event loop either.

Messages are length-prefixed pickles over stdin/stdout (a private pipe between the bridge and its
own child; nothing else can write to it).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

HEADER = struct.Struct("<I")


def write_message(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: BinaryIO) -> Any:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    (size,) = HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _intent_to_dict(match: Any) -> dict[str, Any] | None:
    if match is None:
        return None
    return {
        "name": match.name,
        "confidence": match.confidence,
        "sensitive": bool(getattr(match, "sensitive", False)),
        "broad": bool(getattr(match, "broad", False)),
        "slots": {
            name: {"value": slot.value, "text": slot.text, "entity_ids": list(slot.entity_ids)}
            for name, slot in match.slots.items()
        },
    }


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    from bridge.recognition import GrammarDecoder, IntentRecognizer
    from bridge.recognition.intents import accept_harmless

    decoder: GrammarDecoder | None = None
    intents: IntentRecognizer | None = None
    pending: tuple[Any, Any] | None = None
    active: str | None = None
    complete = False
    write_message(out, ("ready", {"pid": os.getpid()}))

    def apply(vocab: Any, grammar: Any) -> None:
        nonlocal decoder, intents
        started = time.monotonic()
        if decoder is None:
            from bridge.resources import decoder_inputs  # the model, word list and temp files
            decoder = GrammarDecoder(grammar, decoder_inputs())
        else:
            decoder.set_grammar(grammar)
        intents = IntentRecognizer(vocab)
        intents.recognize("what time is it")  # warm up: hassil's first match builds its caches
        write_message(out, ("grammar_ok", grammar.hash, time.monotonic() - started))

    while True:
        try:
            message = read_message(inp)
        except EOFError:
            return
        kind = message[0]
        try:
            if kind == "grammar":
                if active is None:
                    apply(message[1], message[2])
                else:
                    pending = (message[1], message[2])
            elif kind == "start":
                if decoder is None:
                    write_message(out, ("error", message[1], "no grammar loaded"))
                    continue
                active = message[1]
                complete = False
                decoder.start()
            elif kind == "prime":
                if message[1] == active and decoder is not None:
                    decoder.prime(message[2])
            elif kind == "audio":
                if message[1] == active and decoder is not None:
                    decoder.feed(message[2])
                    now_complete = decoder.is_complete()
                    if now_complete != complete:
                        complete = now_complete
                        write_message(out, ("partial", active, complete))
            elif kind in ("end", "cancel"):
                if message[1] == active and decoder is not None:
                    result = decoder.finish()
                    active = None
                    if kind == "end":
                        # "never mind" / "what time is it" need less certainty than an action
                        rejected = result.rejected and not accept_harmless(
                            result.text, result.confidence, result.reject_reason, intents)
                        write_message(out, ("result", message[1], {
                            "text": result.text, "confidence": result.confidence,
                            "rejected": rejected, "audio_seconds": result.audio_seconds,
                            "cpu_seconds": result.cpu_seconds,
                        }))
                    if pending is not None:
                        vocab, grammar = pending
                        pending = None
                        apply(vocab, grammar)
            elif kind == "intent":
                started = time.process_time()
                area = message[3] if len(message) > 3 else None
                match = intents.recognize(message[2], area_id=area) if intents is not None else None
                write_message(out, ("intent", message[1], _intent_to_dict(match), time.process_time() - started))
            elif kind == "exit":
                return
        except Exception as err:  # noqa: BLE001 - report, keep serving
            traceback.print_exc(file=sys.stderr)
            ident = message[1] if len(message) > 1 and isinstance(message[1], str) else None
            if kind in ("start", "audio", "end"):
                active = None
            write_message(out, ("error", ident, f"{type(err).__name__}: {err}"))


def compile_once(inp: BinaryIO, out: BinaryIO) -> None:
    """`--compile`: one vocabulary in, its compiled grammar out, then exit (nothing lingers)."""
    from bridge.recognition import compile_grammar
    from bridge.resources import cmudict

    vocab = read_message(inp)
    started = time.monotonic()
    try:
        grammar = compile_grammar(vocab, cmudict())
    except Exception as err:  # noqa: BLE001 - reported to the bridge, which keeps its old grammar
        write_message(out, ("error", f"{type(err).__name__}: {err}"))
        return
    write_message(out, ("grammar", grammar, time.monotonic() - started))


def main() -> None:
    # Keep the protocol pipe private: anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    if "--compile" in sys.argv[1:]:
        compile_once(inp, out)
    else:
        serve(inp, out)


if __name__ == "__main__":
    main()
