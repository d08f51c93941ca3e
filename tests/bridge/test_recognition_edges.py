"""bridge/recognition/ does no file I/O: data comes from bridge/resources.py, the decoder's grammar
files are written by the edge and gone once pocketsphinx has read them; and the grammar compiler
(split into templates / expansion / automaton / fsg) still emits exactly what it did."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from bridge.recognition import DecoderInputs, GrammarDecoder, compile_grammar
from bridge.recognition.templates import load_intents
from bridge.resources import (
    GrammarFiles,
    acoustic_model,
    cmudict,
    frequent_words,
    load_demo_vocabulary,
)
from tests.support.audio import stream
from tests.support.speech import have_espeak, read_pcm

ROOT = Path(__file__).resolve().parents[2]
RECOGNITION = ROOT / "bridge" / "recognition"

FILE_IO = re.compile(r"\btempfile\b|\bopen\(|read_text|write_text|read_bytes|write_bytes|unlink"
                     r"|importlib import resources|importlib\.resources|\bshutil\b|os\.remove"
                     r"|\bpathlib\b|\bPath\(")


def test_recognition_source_has_no_file_io() -> None:
    offenders = [f"{path.name}:{n}: {line.strip()}"
                 for path in sorted(RECOGNITION.glob("*.py"))
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if FILE_IO.search(line) and not line.lstrip().startswith("#")]
    assert not offenders, offenders


def test_grammar_files_are_private_and_deleted_afterwards() -> None:
    files = GrammarFiles()
    with files({"a.fsg": "FSG_BEGIN x\n", "../b.dict": "word W ER D\n"}) as paths:
        assert Path(paths["a.fsg"]).read_text(encoding="utf-8") == "FSG_BEGIN x\n"
        folder = Path(paths["a.fsg"]).parent
        assert Path(paths["../b.dict"]).parent == folder  # never outside its directory
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not folder.exists()


@contextmanager
def _recording(log: list[str]) -> Iterator[None]:
    """Python-level opens and removals while active (audit hooks cannot be removed: a flag)."""
    active = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if active[0] and event in ("open", "os.remove", "os.unlink", "os.rmdir", "os.mkdir",
                                   "tempfile.mkdtemp", "tempfile.mkstemp", "os.rename"):
            log.append(f"{event} {args[0]}")

    sys.addaudithook(hook)
    try:
        yield
    finally:
        active[0] = False


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
def test_compiling_and_decoding_open_only_what_the_edge_hands_in(say) -> None:
    """Compile the demo grammar and decode one utterance: the only files touched are the ones the
    edge's writer makes (pocketsphinx's own reading of its model is C, not seen here)."""
    pcm = read_pcm(say("turn on the kitchen light"))
    vocab, dictionary, words, model = load_demo_vocabulary(), cmudict(), frequent_words(), acoustic_model()
    load_intents(vocab.language)  # hassil's packaged templates: the library's data, read once
    written: list[str] = []
    writer = GrammarFiles()

    @contextmanager
    def files(texts: Mapping[str, str]) -> Iterator[Mapping[str, str]]:
        with writer(texts) as paths:
            written.extend(paths.values())
            yield paths

    inputs = DecoderInputs(acoustic_model=model, frequent_words=words, write_files=files)

    def run() -> str:
        decoder = GrammarDecoder(compile_grammar(vocab, dictionary), inputs)
        try:
            return stream(decoder, pcm).text
        finally:
            decoder.close()

    assert run() == "turn on the kitchen light"  # once first: lazy imports, caches
    written.clear()
    log: list[str] = []
    with _recording(log):
        assert run() == "turn on the kitchen light"
    assert written and all(not os.path.exists(p) for p in written)
    folders = {os.path.dirname(p) for p in written}
    # the writer's clean-up removes relative to the folder's descriptor: bare names
    names = {os.path.basename(p) for p in written} | {os.path.basename(f) for f in folders}

    def edge(target: str) -> bool:
        return target in names or any(target.startswith(folder) for folder in folders)

    assert any(entry.startswith("open ") for entry in log)  # the hook saw the edge's writes
    strays = [entry for entry in log if not edge(entry.split(" ", 1)[1])]
    assert not strays, strays


# identical output ----------------------------------------------------------------------------
# sha256 of the FSG text and of the dictionary (json, insertion order) compiled by the code before
# grammar.py was split (computed on that tree, home-assistant-intents 2026.1.28, hassil 3.5.0). A new
# templates package or a deliberate change of the compiler changes these: re-derive them then.
# (2026-12-02: the dictionaries re-derived for the accent variants; the FSGs are unchanged, and
# without the variants the old dictionaries come out byte for byte: test_recognition_accents.py.)
BEFORE_SPLIT = {
    "demo": ("bc37b74d6065d98f2666b0e2ba06781090114c4fa7679e4226482cbaf0adc56f",
             "1763d340bee6d01048e8edc0a34869f17320e2b27fa811248bd5ad8968bb4331"),
    "bench300": ("3e2c3ddc58e4cd46d1dcca6d710855f993852c98b2d9f51c27799af416bf17e0",
                 "1c8b92ebb77972b900573531f280d8c2e33ae24d662989e687d912c0f9f9837a"),
}


def _bench_home():  # bench/grammar_bench.py's generated home of 20 areas and 300 entities
    spec = importlib.util.spec_from_file_location("grammar_bench", ROOT / "bench/grammar_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.bench_home()


@pytest.mark.parametrize("home", sorted(BEFORE_SPLIT))
def test_compiled_grammar_is_byte_identical_to_before_the_split(home: str) -> None:
    vocab = load_demo_vocabulary() if home == "demo" else _bench_home()
    grammar = compile_grammar(vocab, cmudict())
    fsg = hashlib.sha256(grammar.fsg.encode()).hexdigest()
    dictionary = hashlib.sha256(json.dumps(grammar.dictionary).encode()).hexdigest()
    assert (fsg, dictionary) == BEFORE_SPLIT[home]
