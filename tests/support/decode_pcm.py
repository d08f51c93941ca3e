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

from bridge.recognition import GrammarDecoder, compile_grammar, load_demo_vocabulary


def decode_all(utterances: list[bytes]) -> list[dict[str, Any]]:
    """Each utterance through one decoder, in order, fed in 60 ms chunks like the bridge's."""
    decoder = GrammarDecoder(compile_grammar(load_demo_vocabulary()))
    out = []
    try:
        for pcm in utterances:
            decoder.start()
            for i in range(0, len(pcm), 1920):
                decoder.feed(pcm[i:i + 1920])
            result = decoder.finish()
            out.append({"text": result.text, "confidence": result.confidence,
                        "rejected": result.rejected, "reason": result.reject_reason,
                        "score": dataclasses.asdict(decoder.last_score)})
    finally:
        decoder.close()
    return out


if __name__ == "__main__":
    import pocketsphinx

    with open(sys.argv[1], "rb") as handle:
        utterances = pickle.load(handle)
    json.dump({"pocketsphinx": pocketsphinx.__file__, "results": decode_all(utterances)},
              sys.stdout)
