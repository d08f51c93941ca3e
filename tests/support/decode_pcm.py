"""Decode utterances with the demo home's grammar and print what the decoder found, as JSON.

Run as a script by the test that compares Hearth's patched pocketsphinx with PyPI's wheel
(tests/bridge/test_pocketsphinx_build.py): ``python decode_pcm.py <pickle of list[bytes]>``, with
PYTHONPATH choosing which pocketsphinx is imported.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bridge.recognition import (
    DecodeResult,
    DecoderSettings,
    GrammarDecoder,
    compile_grammar,
)
from bridge.resources import cmudict, load_demo_vocabulary, new_decoder
from tests.support.audio import stream


def decode_one(decoder: GrammarDecoder, pcm: bytes, chunk: int = 1920) -> tuple[DecodeResult, dict[str, Any]]:
    """One utterance, streamed in `chunk`-byte pieces (60 ms by default); the result and
    everything the decoder found, as plain data for comparing builds."""
    result = stream(decoder, pcm, chunk)
    return result, {"text": result.text, "confidence": result.confidence,
                    "rejected": result.rejected, "reason": result.reject_reason,
                    "score": dataclasses.asdict(decoder.last_score)}


def decode_all(utterances: list[bytes],
               settings: DecoderSettings = DecoderSettings()) -> list[dict[str, Any]]:
    """Each utterance through one decoder for the demo home (with `settings`), in order."""
    decoder = new_decoder(compile_grammar(load_demo_vocabulary(), cmudict()), settings)
    try:
        return [decode_one(decoder, pcm)[1] for pcm in utterances]
    finally:
        decoder.close()


if __name__ == "__main__":
    import pocketsphinx

    with open(sys.argv[1], "rb") as handle:
        utterances = pickle.load(handle)
    json.dump({"pocketsphinx": pocketsphinx.__file__, "results": decode_all(utterances)},
              sys.stdout)
