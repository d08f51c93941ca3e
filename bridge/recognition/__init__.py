"""Speech recognition for Hearth: vocabulary → grammar → pocketsphinx decoding → intents.

Pure and synchronous; the bridge runs :class:`GrammarDecoder` in worker processes.
"""

from .decoder import DecodeResult, GrammarDecoder
from .grammar import CompiledGrammar, compile_grammar
from .intents import IntentMatch, IntentRecognizer, SlotValue
from .vocabulary import (
    Area,
    Entity,
    Floor,
    Vocabulary,
    VocabularyError,
    load_demo_vocabulary,
    parse_vocabulary,
)

__all__ = [
    "Area", "CompiledGrammar", "DecodeResult", "Entity", "Floor", "GrammarDecoder",
    "IntentMatch", "IntentRecognizer", "SlotValue", "Vocabulary", "VocabularyError",
    "compile_grammar", "load_demo_vocabulary", "parse_vocabulary",
]
