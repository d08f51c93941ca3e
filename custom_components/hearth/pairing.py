"""Signing the commands that change privacy or settings with the key shared at pairing.

The bridge applies a `policy/set`, `history/purge` or satellite `settings/set` only when it
proves it comes from Home Assistant, whatever the broker lets other logins publish
(docs/security.md, promise 6). The key (256 bits) is made by the bridge and given to this
integration when it is set up: pasted in the config flow, or handed over by the add-on through
Supervisor's discovery. It is kept in the config entry's data.

Each command is sent as one header line and then its exact bytes:
`hearth-auth1 <key id> <seq> <mac>\\n<body>`, the mac an HMAC-SHA256 over the scheme, the topic,
the key id, the sequence number and the body (docs/protocol.md). The sequence number is
max(last + 1, time in ms), kept in `.storage/hearth.<entry id>.seq`, so it always grows even if
the clock goes back; the bridge refuses any number it has seen already (a replay). This is a copy
of the bridge's scheme (bridge/privacy/auth.py); tests/bridge/test_contract.py compares them.

A command the bridge refuses as `unauthenticated` means this entry's key is not the bridge's any
more (the bridge was re-paired, or its key was lost): Home Assistant asks the owner for the new
key (re-authentication). Any refusal the bridge reports on `bridge/error`, Home Assistant's own or
a forgery from another client on the broker, raises a repair issue, once per load.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components import mqtt
from homeassistant.components.mqtt import ReceiveMessage
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store

from .const import CONF_PAIRING_KEY, DOMAIN, ISSUE_COMMANDS_REFUSED
from .models import parse_json

if TYPE_CHECKING:
    from . import HearthConfigEntry

_LOGGER = logging.getLogger(__name__)

SCHEME: Final = b"hearth-auth1"
UNAUTHENTICATED: Final = "unauthenticated"
_KEY: Final = re.compile(r"[0-9a-f]{64}")
STORAGE_VERSION = 1


def normalize_key(text: str) -> str:
    """Return a pasted key as 64 lowercase hex digits (spaces, dashes, colons dropped).

    Raises ValueError when it is not 256 bits in hex.
    """
    key = re.sub(r"[\s:-]", "", text).lower()
    if not _KEY.fullmatch(key):
        raise ValueError("a pairing key is 64 hexadecimal digits")
    return key


def key_id(key: bytes) -> str:
    """Return the key's public name, as the bridge shows it in `bridge/status`."""
    return hashlib.sha256(b"hearth-key-id\0" + key).hexdigest()[:16]


def sign(key: bytes, topic: str, seq: int, body: bytes) -> bytes:
    """Return `body` with the header line that proves it comes from the key's holder."""
    kid = key_id(key)
    message = b"\0".join(
        (SCHEME, topic.encode(), kid.encode(), str(seq).encode(), body)
    )
    mac = hmac.new(key, message, hashlib.sha256).hexdigest()
    return b"%s %s %d %s\n%s" % (SCHEME, kid.encode(), seq, mac.encode(), body)


def refused_issue_id(entry_id: str) -> str:
    """Return the id of the repair issue raised when the bridge refused a command."""
    return f"{ISSUE_COMMANDS_REFUSED}_{entry_id}"


class CommandSigner:
    """Signs and publishes one entry's commands; watches the bridge's refusals."""

    def __init__(
        self, hass: HomeAssistant, entry: HearthConfigEntry, bridge_id: str
    ) -> None:
        """Initialize."""
        self.hass = hass
        self.entry = entry
        self.bridge_id = bridge_id
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.seq"
        )
        self._last = 0
        self._lock = asyncio.Lock()
        self.refusals = 0
        """Refusals the bridge reported on `bridge/error` since the entry loaded."""

    @property
    def key(self) -> bytes | None:
        """Return the pairing key (None: this entry was never paired)."""
        text = self.entry.data.get(CONF_PAIRING_KEY)
        return bytes.fromhex(text) if isinstance(text, str) else None

    async def async_start(self, error_topic: str) -> None:
        """Load the last sequence number; listen for refusals; ask for a key if none."""
        data = await self._store.async_load()
        if isinstance(data, dict) and isinstance(seq := data.get("seq"), int):
            self._last = seq
        self.entry.async_on_unload(
            await mqtt.async_subscribe(self.hass, error_topic, self._handle_error)
        )
        if self.key is None:
            _LOGGER.warning(
                "Hearth bridge %s is not paired: its privacy commands will be refused"
                " until its pairing key is entered",
                self.bridge_id,
            )
            self.entry.async_start_reauth(self.hass)

    def _data(self) -> dict[str, Any]:
        return {"seq": self._last}

    async def async_publish(self, topic: str, body: bytes) -> None:
        """Publish `body` on `topic`, signed; in the order the sequence numbers are given."""
        key = self.key
        if key is None:
            self.entry.async_start_reauth(self.hass)
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="not_paired",
                translation_placeholders={"bridge": self.bridge_id},
            )
        async with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1_000_000)
            self._store.async_delay_save(self._data, 1)
            await mqtt.async_publish(
                self.hass, topic, sign(key, topic, self._last, body), qos=1
            )

    @callback
    def async_check_result(self, result: dict[str, Any]) -> None:
        """Raise (and ask for the new key) if the bridge refused a command as unauthenticated."""
        if result.get("code") != UNAUTHENTICATED:
            return
        self.entry.async_start_reauth(self.hass)
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="unauthenticated",
            translation_placeholders={
                "bridge": self.bridge_id,
                "error": str(result.get("error") or ""),
            },
        )

    @callback
    def _handle_error(self, msg: ReceiveMessage) -> None:
        data = parse_json(msg.payload)
        if data is None or data.get("code") != UNAUTHENTICATED:
            return
        self.refusals += 1
        if self.refusals > 1:
            return
        _LOGGER.warning(
            "Hearth bridge %s refused a command that was not signed with its pairing key"
            " (%s)",
            self.bridge_id,
            data.get("message"),
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            refused_issue_id(self.entry.entry_id),
            is_fixable=True,  # Home Assistant's confirm step dismisses it
            is_persistent=True,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_COMMANDS_REFUSED,
            translation_placeholders={
                "bridge": self.bridge_id,
                "topic": str(data.get("topic") or "?"),
                "reason": str(data.get("message") or "?"),
            },
        )


async def async_remove_pairing(hass: HomeAssistant, entry_id: str) -> None:
    """Forget a removed entry's sequence number and its notice."""
    await Store[dict[str, Any]](
        hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.seq"
    ).async_remove()
    ir.async_delete_issue(hass, DOMAIN, refused_issue_id(entry_id))
