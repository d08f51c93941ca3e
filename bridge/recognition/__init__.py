"""Speech recognition for Hearth: vocabulary → grammar → pocketsphinx decoding → intents.

Pure and synchronous, and does no file I/O of its own: the data it needs (the CMU dictionary,
the garbage loop's words, the acoustic model's directory, a place for the decoder's grammar
files) comes in as arguments, made by :mod:`bridge.resources`. The bridge runs
:class:`GrammarDecoder` in worker processes.
"""

from .decoder import DecodeResult, DecoderInputs, GrammarDecoder
from .grammar import CompiledGrammar, compile_grammar
from .intents import IntentMatch, IntentRecognizer, SlotValue
from .settings import DecoderSettings
from .vocabulary import (
    Area,
    Entity,
    Floor,
    Vocabulary,
    VocabularyError,
    parse_vocabulary,
)

__all__ = [
    "Area", "CompiledGrammar", "DecodeResult", "DecoderInputs", "DecoderSettings", "Entity",
    "Floor", "GrammarDecoder", "IntentMatch", "IntentRecognizer", "SlotValue", "Vocabulary",
    "VocabularyError", "compile_grammar", "parse_vocabulary",
]
