"""The recognizer's files: everything bridge/recognition/ needs from disk, read or written here.

Reads the demo home (``bridge/data/demo_home.yaml``), the garbage loop's frequent words
(``bridge/data/frequent_words.txt``) and pocketsphinx's bundled CMU dictionary, each once per
process; names the bundled acoustic model's directory; and, for the decoder, writes the
grammar's dictionary and FSG text into a private temporary directory that is deleted as soon as
pocketsphinx has read them (:class:`GrammarFiles`). :func:`decoder_inputs` and
:func:`new_decoder` put it together for the worker processes, the benches and the tests.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from .recognition.decoder import DecoderInputs, GrammarDecoder
from .recognition.garbage import parse_frequent_words
from .recognition.grammar import CompiledGrammar
from .recognition.openear import OpenEar
from .recognition.pronounce import parse_dictionary
from .recognition.settings import DecoderSettings
from .recognition.vocabulary import Vocabulary, parse_vocabulary

FREQUENT_WORDS_FILE = "frequent_words.txt"
"""The garbage loop's word list in bridge/data (made by ``python -m bridge.tools.frequent_words``)."""


def data_path(name: str) -> Path:
    """A file of the source tree's bridge/data (for the tool that rewrites one)."""
    return Path(__file__).resolve().parent / "data" / name


def load_demo_vocabulary() -> Vocabulary:
    """The demo home shipped in ``bridge/data/demo_home.yaml`` (validated like any other)."""
    import yaml  # local import: only the demo needs YAML

    text = resources.files("bridge").joinpath("data/demo_home.yaml").read_text("utf-8")
    return parse_vocabulary(yaml.safe_load(text))


@functools.cache
def frequent_words() -> dict[str, tuple[str, ...]]:
    """The garbage loop's candidates: word -> pronunciations, most frequent first (cached)."""
    data = resources.files("bridge.data").joinpath(FREQUENT_WORDS_FILE)
    return parse_frequent_words(data.read_text(encoding="utf-8"))


def model_dir() -> Path:
    """The bundled model directory of pocketsphinx."""
    import pocketsphinx

    return Path(pocketsphinx.get_model_path())


def acoustic_model() -> str:
    """The bundled en-us acoustic model's directory."""
    return str(model_dir() / "en-us" / "en-us")


def dictionary_path() -> Path:
    """The bundled en-us pronunciation dictionary."""
    return model_dir() / "en-us" / "cmudict-en-us.dict"


def language_model_path() -> Path:
    """The bundled general English language model (the open ear and the word-list tool read it)."""
    return model_dir() / "en-us" / "en-us.lm.bin"


@functools.cache
def cmudict() -> dict[str, tuple[str, ...]]:
    """word -> pronunciations, read once per process from the bundled dictionary."""
    with dictionary_path().open(encoding="utf-8") as handle:
        return parse_dictionary(handle)


class GrammarFiles:
    """Writes texts into files of a fresh private temporary directory (mode 0700) for as long as
    the ``with`` lasts: the decoder's :data:`~bridge.recognition.decoder.WriteFiles`."""

    def __init__(self, prefix: str = "hearth-asr-") -> None:
        self.prefix = prefix

    @contextmanager
    def __call__(self, texts: Mapping[str, str]) -> Iterator[Mapping[str, str]]:
        with tempfile.TemporaryDirectory(prefix=self.prefix) as tmp:
            paths: dict[str, str] = {}
            for name, text in texts.items():
                path = Path(tmp) / Path(name).name  # never outside the directory
                path.write_text(text, encoding="utf-8")
                paths[name] = str(path)
            yield paths


def decoder_inputs() -> DecoderInputs:
    """The bundled acoustic model, the stored frequent words and private temporary files."""
    return DecoderInputs(acoustic_model=acoustic_model(), frequent_words=frequent_words(),
                         write_files=GrammarFiles())


def new_decoder(grammar: CompiledGrammar,
                settings: DecoderSettings = DecoderSettings()) -> GrammarDecoder:
    """A :class:`GrammarDecoder` for `grammar` with the bundled model and stored word list."""
    return GrammarDecoder(grammar, decoder_inputs(), settings)


def new_open_ear() -> OpenEar:
    """The open ear (:class:`~bridge.recognition.openear.OpenEar`): the bundled acoustic model,
    general English language model and dictionary."""
    return OpenEar(acoustic_model(), str(language_model_path()), str(dictionary_path()))
