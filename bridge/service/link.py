"""The MQTT link: the one place that talks to the broker (and the only import of aiomqtt).

:class:`Connection` is one connection (an async context manager: subscribe, publish, iterate
messages), used as it is by the command-line satellite. :class:`MqttLink` is the bridge's side:
it connects and reconnects with jittered backoff, subscribes, hands every message to one
callback, and sends from a bounded outgoing queue so a broker outage cannot grow memory. It also
knows where the broker it reached is (the connected socket's peer address, classified by the
privacy tables), which decides whether audio forwarded through the broker stays on the LAN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast

import aiomqtt

from ..privacy.locality import address_class
from ..settings import MqttSettings

_LOGGER = logging.getLogger("bridge")

OUTGOING_CAP = 2000  # messages waiting while the broker is away; beyond it the oldest go
#: Messages received but not yet handled. Handling one takes microseconds, so a backlog means
#: the machine is starved of CPU while satellites keep streaming: beyond INBOUND_AUDIO_CAP waiting
#: messages new audio frames are shed (satellites see a sequence gap, as after a lost frame),
#: beyond INBOUND_CAP everything is. Control messages (policy, mutes, vocabulary) are never
#: queued behind more than INBOUND_AUDIO_CAP frames, and memory stays bounded either way.
INBOUND_AUDIO_CAP = 1000
INBOUND_CAP = 10000
FIRST_RETRY_DELAY = 0.5  #: seconds before the first retry; doubled after each failure up to reconnect_max
#: A broker that was just there is most likely restarting (an upgrade, a crash and its service
#: manager's restart): for FAST_RETRY_WINDOW seconds after losing it, retries come at most every
#: FAST_RETRY_DELAY seconds (one refused connection a second), so the bridge is back within about
#: a second of the broker. After that the doubling backoff goes on, and a broker that is gone for
#: good is not hammered.
FAST_RETRY_DELAY = 1.0
FAST_RETRY_WINDOW = 60.0


class BrokerError(Exception):
    """The broker could not be reached, or the connection was lost."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message received from the broker."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True, slots=True)
class LastWill:
    """What the broker publishes for us if the connection dies."""

    topic: str
    payload: bytes
    retain: bool = True


def _tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    tls = settings.tls
    if not tls.enabled:
        return None
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _as_bytes(payload: object) -> bytes:
    if type(payload) is bytes:
        return payload
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


class InboundBacklog:
    """What the incoming queue shed: audio beyond :data:`INBOUND_AUDIO_CAP` waiting messages,
    anything beyond :data:`INBOUND_CAP`."""

    def __init__(self, sheddable: Callable[[str], bool]) -> None:
        self.sheddable = sheddable
        self.shed_audio = 0
        self.shed_other = 0
        self.queue: asyncio.Queue[Any] | None = None  #: the current connection's

    @property
    def depth(self) -> int:
        """Messages received and waiting to be handled."""
        return self.queue.qsize() if self.queue is not None else 0

    def queue_type(self) -> type[asyncio.Queue[Any]]:
        """The queue class handed to aiomqtt (it builds the queue itself). It holds received
        messages as paho made them (anything with `topic`, `payload` and `retain`)."""
        backlog = self

        class InboundQueue(asyncio.Queue[Any]):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                backlog.queue = self

            def put_nowait(self, item: Any) -> None:
                waiting = self.qsize()
                if waiting >= INBOUND_AUDIO_CAP and backlog.sheddable(str(item.topic)):
                    backlog.shed_audio += 1
                elif waiting >= INBOUND_CAP:
                    backlog.shed_other += 1
                else:
                    super().put_nowait(item)

        return InboundQueue


class _ReadAhead:
    """Reads the socket in large pieces for paho, and every whole packet that arrived per wake-up.

    paho reads a packet with three or four `recv` calls (its type byte, each length byte, its
    body) and handles one packet each time the socket becomes readable, so every audio frame
    costs an event-loop iteration and a handful of system calls. Here paho's reads are served
    from one `recv` of up to READ_AHEAD bytes, and its `loop_read` goes on while read-ahead
    bytes remain (they would otherwise wait for the socket's next readiness). paho keeps its own
    state for a partly read packet, so a piece may end anywhere. At most READS_PER_WAKEUP pieces
    are read per wake-up: under a flood the rest waits for the next event-loop iteration (the
    socket is still readable), so the handlers keep up and the inbound queue does not fill up
    behind one long read. Installed on one paho client
    (aiomqtt's), through two of paho's methods: isolated here, so an upgrade breaks one place.
    """

    READ_AHEAD = 65536
    READS_PER_WAKEUP = 2

    def __init__(self, client: Any) -> None:
        self._client = client
        self._recv = client._sock_recv  # noqa: SLF001 - the bound original
        self._loop_read = client.loop_read
        self._data = b""
        self._at = 0
        self._reads = 0

    def install(self) -> None:
        self._client._sock_recv = self.recv  # noqa: SLF001
        self._client.loop_read = self.loop_read

    def recv(self, bufsize: int) -> bytes:
        if self._at >= len(self._data):
            if self._reads >= self.READS_PER_WAKEUP:
                raise BlockingIOError  # enough for this wake-up: paho keeps a partial packet's state
            self._reads += 1
            self._data = self._recv(self.READ_AHEAD)  # raises BlockingIOError when there is nothing
            self._at = 0
        at = self._at
        piece = self._data[at:at + bufsize]
        self._at = at + len(piece)
        return piece

    def loop_read(self, max_packets: int = 1) -> Any:
        self._reads = 0
        rc = self._loop_read(max_packets)
        while not rc and self._at < len(self._data) and self._client._sock is not None:  # noqa: SLF001
            rc = self._loop_read(max_packets)
        return rc


class Connection:
    """One MQTT connection. Not re-entrant; errors surface as :class:`BrokerError`."""

    def __init__(self, settings: MqttSettings, client_id: str, will: LastWill | None = None,
                 backlog: InboundBacklog | None = None) -> None:
        self.settings = settings
        self._client = aiomqtt.Client(
            hostname=settings.host, port=settings.port, username=settings.username,
            password=settings.password, keepalive=settings.keepalive, identifier=client_id,
            will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=will.retain) if will else None,
            tls_context=_tls_context(settings),
            queue_type=backlog.queue_type() if backlog is not None else None,
        )
        # The receive path, lean: paho's message goes into the queue as it is (aiomqtt would
        # wrap each one in its own Message and validate its topic), and :meth:`messages` takes
        # every waiting message per wake-up instead of one task and one wait per message.
        # aiomqtt has no public hook for either: its paho client (`_client`), its queue
        # (`_queue`) and its disconnection future (`_disconnected`) are used here, and only here.
        self._queue = cast("asyncio.Queue[Any]", self._client._queue)  # noqa: SLF001
        paho_client = self._client._client  # noqa: SLF001
        queue = self._queue
        paho_client.on_message = lambda _client, _userdata, message: queue.put_nowait(message)
        _ReadAhead(paho_client).install()

    async def __aenter__(self) -> Self:
        try:
            await self._client.__aenter__()
        except aiomqtt.MqttError as err:
            raise BrokerError(str(err)) from err
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(exc_type, exc, tb)

    async def subscribe(self, topic: str) -> None:
        try:
            await self._client.subscribe(topic, qos=0)
        except aiomqtt.MqttError as err:
            raise BrokerError(str(err)) from err

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 0) -> None:
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as err:
            raise BrokerError(str(err)) from err

    async def messages(self) -> AsyncIterator[Message]:
        """Every message for our subscriptions, in arrival order, until the connection ends."""
        async for batch in self.batches():
            for message in batch:
                yield message

    async def batches(self) -> AsyncIterator[list[Message]]:
        """Every message for our subscriptions, in arrival order, as lists of all the messages
        that were waiting at each wake-up, until the connection ends."""
        queue = self._queue
        disconnected: asyncio.Future[None] = self._client._disconnected  # noqa: SLF001
        while True:
            if queue.empty():
                getter = asyncio.ensure_future(queue.get())
                try:
                    await asyncio.wait((getter, disconnected), return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    getter.cancel()
                    raise
                if not getter.done():
                    getter.cancel()
                    try:
                        disconnected.result()
                    except Exception as err:  # noqa: BLE001 - whatever ended the connection
                        raise BrokerError(str(err)) from err
                    raise BrokerError("disconnected")
                first = getter.result()
                batch = [Message(first.topic, _as_bytes(first.payload), bool(first.retain))]
            else:
                batch = []
            get = queue.get_nowait
            for _ in range(queue.qsize()):
                raw = get()
                batch.append(Message(raw.topic, _as_bytes(raw.payload), bool(raw.retain)))
            yield batch

    def peer_address(self) -> str | None:
        """The IP address the connection actually reached, or None when it cannot be read.

        aiomqtt has no public accessor for its socket: this reads paho's client (aiomqtt's
        `_client`) through paho's public `socket()`. Isolated here so an upgrade breaks one place.
        """
        paho = getattr(self._client, "_client", None)
        sock = paho.socket() if paho is not None else None
        if sock is None:
            return None
        try:
            peer = sock.getpeername()
        except (OSError, AttributeError):
            return None
        return str(peer[0]) if isinstance(peer, tuple) and peer else None


class MqttLink:
    """The bridge's link to the broker: reconnects forever, queues what it sends (bounded)."""

    def __init__(self, settings: MqttSettings, client_id: str, *, subscriptions: Callable[[], Sequence[str]],
                 will: LastWill, on_connect: Callable[[Connection], Awaitable[None]],
                 on_message: Callable[[Message], None], sheddable: Callable[[str], bool] = lambda _: False,
                 on_disconnect: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.client_id = client_id
        self._subscriptions = subscriptions
        self._will = will
        self._on_connect = on_connect
        self._on_message = on_message
        self._on_disconnect = on_disconnect
        self._connection: Connection | None = None
        self._outgoing: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.dropped_outgoing = 0
        self.backlog = InboundBacklog(sheddable)
        self._broker_class = "public"  # until a connection says otherwise: fail closed

    @property
    def outgoing_depth(self) -> int:
        """Messages waiting to be sent."""
        return self._outgoing.qsize()

    def broker_address_class(self) -> str:
        """Where the broker we reached is: "loopback", "lan" or "public" (unknown: "public")."""
        return self._broker_class

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queues a message; the sender task sends it when connected. Bounded: the oldest go."""
        if self._outgoing.qsize() >= OUTGOING_CAP:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._outgoing.get_nowait()
            self.dropped_outgoing += 1
        self._outgoing.put_nowait((topic, payload, retain))

    async def run(self) -> None:
        """Connects, serves and reconnects until cancelled; sends the queue meanwhile."""
        sender = asyncio.create_task(self._send_loop(), name="mqtt-publisher")
        try:
            await self._connect_loop()
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _connect_loop(self) -> None:
        delay = FIRST_RETRY_DELAY
        lost_at: float | None = None  # when the last working connection was lost
        settings = self.settings
        while True:
            failure: str | None = None
            try:
                async with Connection(settings, self.client_id, self._will, self.backlog) as connection:
                    for topic in self._subscriptions():
                        await connection.subscribe(topic)
                    peer = connection.peer_address()
                    self._broker_class = address_class(peer) if peer else "public"
                    self._connection = connection
                    await self._on_connect(connection)
                    self.connected.set()
                    delay = FIRST_RETRY_DELAY
                    _LOGGER.info("Connected to MQTT broker %s:%s", settings.host, settings.port)
                    handle = self._on_message
                    async for batch in connection.batches():
                        for message in batch:
                            handle(message)
            except BrokerError as err:
                failure = str(err)
            finally:
                was_connected = self.connected.is_set()
                if was_connected:
                    lost_at = time.monotonic()
                self._connection = None
                self.connected.clear()
            if was_connected:
                # Whatever was streaming through the broker was cut off with it: the link's owner
                # closes it now, not when an audio timeout notices it much later.
                self._on_disconnect()
            self.reconnects += 1
            # The pause actually taken (the backoff, capped while a broker was just lost, jittered):
            # what the log says is what is done.
            pause = self._retry_delay(delay, lost_at) * (0.8 + 0.4 * random.random())
            if was_connected:
                _LOGGER.warning("MQTT connection lost: %s; reconnecting in %.1f s", failure or "closed", pause)
            else:
                _LOGGER.info("MQTT broker not reachable (%s); retrying in %.1f s", failure or "closed", pause)
            await asyncio.sleep(pause)
            delay = min(delay * 2, settings.reconnect_max)

    @staticmethod
    def _retry_delay(delay: float, lost_at: float | None) -> float:
        """The pause before the next attempt: the backoff, capped while a broker was just lost."""
        if lost_at is not None and time.monotonic() - lost_at < FAST_RETRY_WINDOW:
            return min(delay, FAST_RETRY_DELAY)
        return delay

    async def _send_loop(self) -> None:
        while True:
            topic, data, retain = await self._outgoing.get()
            while True:
                await self.connected.wait()
                connection = self._connection
                if connection is None:
                    await asyncio.sleep(0.05)
                    continue
                try:
                    await connection.publish(topic, data, retain=retain)
                    break
                except BrokerError:
                    await asyncio.sleep(0.2)
