"""The messages between the bridge and its decoder workers (`python -m bridge.stt.worker`).

Every message is a frozen dataclass; :data:`ToWorker` and :data:`FromWorker` are the closed sets
each side may send. On the pipe (the worker's stdin/stdout, private between the bridge and its own
child) a message is one frame: a 4-byte little-endian length, then the pickled tuple
``(kind, *fields)``. The vocabulary, the compiled grammar and the intent travel pickled inside it;
the kinds, the number of fields and each field's type are checked on the way in, so a frame that is
not a message of the expected direction raises :class:`MessageError`, never an IndexError.
"""

from __future__ import annotations

import pickle
import struct
import types
import typing
from dataclasses import dataclass, fields
from typing import BinaryIO, ClassVar

from ..engines import IntentResult
from ..recognition import CompiledGrammar, Vocabulary
from ..recognition.verdict import Verdict, VerdictSettings

HEADER = struct.Struct("<I")
MAX_FRAME = 1 << 30  # a larger length can only be a broken pipe


class MessageError(ValueError):
    """A frame that is not a well-formed worker message."""


# -- bridge -> worker ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadGrammar:
    """Switch to this grammar (after the current utterance); answered by :class:`GrammarLoaded`."""

    KIND: ClassVar[str] = "grammar"
    vocabulary: Vocabulary
    grammar: CompiledGrammar


@dataclass(frozen=True, slots=True)
class StartUtterance:
    KIND: ClassVar[str] = "start"
    utterance: str


@dataclass(frozen=True, slots=True)
class Prime:
    """Audio from just before the utterance, for calibration only."""

    KIND: ClassVar[str] = "prime"
    utterance: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class Audio:
    KIND: ClassVar[str] = "audio"
    utterance: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class EndUtterance:
    """End of speech: answered by one :class:`UtteranceResult`, with the intent recognized in
    `area` (the speaking satellite's) and the verdict on it."""

    KIND: ClassVar[str] = "end"
    utterance: str
    area: str | None = None
    settings: VerdictSettings | None = None
    """The verdict's thresholds (None: the defaults)."""


@dataclass(frozen=True, slots=True)
class CancelUtterance:
    KIND: ClassVar[str] = "cancel"
    utterance: str


@dataclass(frozen=True, slots=True)
class RecognizeIntent:
    """Intent recognition on text that did not come from this worker's decoder (Hermes NLU
    queries, other engines' transcripts); answered by :class:`IntentRecognized`."""

    KIND: ClassVar[str] = "intent"
    request: str
    text: str
    area: str | None = None


@dataclass(frozen=True, slots=True)
class Exit:
    KIND: ClassVar[str] = "exit"


@dataclass(frozen=True, slots=True)
class Compile:
    """`--compile` children only: compile this vocabulary, answer :class:`Compiled`, exit."""

    KIND: ClassVar[str] = "compile"
    vocabulary: Vocabulary


# -- worker -> bridge ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    KIND: ClassVar[str] = "ready"
    pid: int


@dataclass(frozen=True, slots=True)
class GrammarLoaded:
    KIND: ClassVar[str] = "grammar_ok"
    grammar_hash: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Partial:
    """Whether the partial hypothesis is a whole command changed."""

    KIND: ClassVar[str] = "partial"
    utterance: str
    complete: bool


@dataclass(frozen=True, slots=True)
class UtteranceResult:
    """The answer to :class:`EndUtterance`. `intent_error` is set when intent recognition failed
    (the text still stands; the bridge may ask again with :class:`RecognizeIntent`)."""

    KIND: ClassVar[str] = "result"
    utterance: str
    text: str
    confidence: float
    rejected: bool
    audio_seconds: float
    cpu_seconds: float
    intent: IntentResult | None = None
    intent_cpu_seconds: float = 0.0
    intent_error: str | None = None
    verdict: Verdict | None = None
    """Act, ask or refuse (:func:`bridge.recognition.verdict.decide`), None if intent recognition
    failed; `rejected` is its REFUSE."""
    open_cpu_seconds: float = 0.0
    """CPU seconds the open ear spent on this utterance (as the audio arrived, and at its end)."""


@dataclass(frozen=True, slots=True)
class IntentRecognized:
    KIND: ClassVar[str] = "intent_result"
    request: str
    intent: IntentResult | None
    cpu_seconds: float


@dataclass(frozen=True, slots=True)
class Failed:
    """Something failed; `ident` is the utterance or intent request it concerns, None otherwise
    (a grammar that would not load, a malformed message, a failed compile)."""

    KIND: ClassVar[str] = "error"
    ident: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Compiled:
    KIND: ClassVar[str] = "compiled"
    grammar: CompiledGrammar
    seconds: float


type ToWorker = (LoadGrammar | StartUtterance | Prime | Audio | EndUtterance | CancelUtterance
                 | RecognizeIntent | Exit | Compile)
type FromWorker = (Ready | GrammarLoaded | Partial | UtteranceResult | IntentRecognized | Failed
                   | Compiled)
type Message = ToWorker | FromWorker

TO_WORKER: tuple[type[ToWorker], ...] = (LoadGrammar, StartUtterance, Prime, Audio, EndUtterance,
                                         CancelUtterance, RecognizeIntent, Exit, Compile)
FROM_WORKER: tuple[type[FromWorker], ...] = (Ready, GrammarLoaded, Partial, UtteranceResult,
                                             IntentRecognized, Failed, Compiled)


# -- encoding --------------------------------------------------------------------------------------


def _runtime_types(hint: object) -> tuple[type, ...]:
    """The classes a value of type `hint` may have (float also takes int, as JSON does)."""
    if hint is None or hint is types.NoneType:
        return (types.NoneType,)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _runtime_types(arg))
    if hint is float:
        return (float, int)
    if isinstance(hint, type):
        return (hint,)
    raise TypeError(f"no runtime check for {hint!r}")


type _Spec = tuple[tuple[str, tuple[type, ...]], ...]


def _specs(classes: tuple[type[Message], ...]) -> dict[str, tuple[type[Message], _Spec]]:
    table: dict[str, tuple[type[Message], _Spec]] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        table[cls.KIND] = (cls, tuple((f.name, _runtime_types(hints[f.name])) for f in fields(cls)))
    return table


_TO_WORKER = _specs(TO_WORKER)
_FROM_WORKER = _specs(FROM_WORKER)
_NAMES = {cls: spec for table in (_TO_WORKER, _FROM_WORKER) for cls, spec in table.values()}


def _check(kind: str, spec: _Spec, values: tuple[object, ...]) -> str | None:
    """What is wrong with `values` as the fields of a `kind` message, or None."""
    if len(values) != len(spec):
        return f"{kind!r} message with {len(values)} fields, expected {len(spec)}"
    for (name, allowed), value in zip(spec, values, strict=True):
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            return (f"{kind!r} message: {name} is {type(value).__name__}, expected "
                    + " | ".join(t.__name__ for t in allowed))
    return None


def encode(message: Message) -> bytes:
    """One framed message: the 4-byte length, then the pickled ``(kind, *fields)``.

    TypeError if `message` is not a worker message or a field has the wrong type."""
    spec = _NAMES.get(type(message))
    if spec is None:
        raise TypeError(f"not a worker message: {type(message).__name__}")
    values = tuple(getattr(message, name) for name, _ in spec)
    problem = _check(message.KIND, spec, values)
    if problem is not None:
        raise TypeError(problem)
    body = pickle.dumps((message.KIND, *values), protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def frame_size(header: bytes) -> int:
    """The body length a frame header announces; MessageError if it cannot be one."""
    if len(header) != HEADER.size:
        raise MessageError(f"frame header of {len(header)} bytes, not {HEADER.size}")
    size: int = HEADER.unpack(header)[0]
    if size > MAX_FRAME:
        raise MessageError(f"frame of {size} bytes announced (at most {MAX_FRAME})")
    return size


def _decode(body: bytes, table: dict[str, tuple[type[Message], _Spec]], direction: str) -> Message:
    try:
        data = pickle.loads(body)
    except Exception as err:  # noqa: BLE001 - whatever the bytes were, they are not a message
        raise MessageError(f"unreadable frame ({type(err).__name__}: {err})") from None
    if not isinstance(data, tuple) or not data or not isinstance(data[0], str):
        raise MessageError(f"frame holds {type(data).__name__}, not a (kind, fields...) tuple")
    kind, values = data[0], data[1:]
    entry = table.get(kind)
    if entry is None:
        raise MessageError(f"unknown message kind {kind!r} {direction}")
    cls, spec = entry
    problem = _check(kind, spec, values)
    if problem is not None:
        raise MessageError(problem)
    return cls(*values)


def decode_to_worker(body: bytes) -> ToWorker:
    """A frame's body (without its header) as a message to the worker."""
    return typing.cast(ToWorker, _decode(body, _TO_WORKER, "to the worker"))


def decode_from_worker(body: bytes) -> FromWorker:
    """A frame's body (without its header) as a message from the worker."""
    return typing.cast(FromWorker, _decode(body, _FROM_WORKER, "from the worker"))


def write_message(stream: BinaryIO, message: Message) -> None:
    stream.write(encode(message))
    stream.flush()


def read_body(stream: BinaryIO) -> bytes:
    """The next frame's body from a blocking stream; EOFError at (or in the middle of) its end."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError
    size = frame_size(header)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return body
