"""Commands sent to the bridge that wait for its answer, matched by request id."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
import uuid

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN


class PendingRequests:
    """The requests waiting for the bridge's answer, by request id."""

    def __init__(self, hass: HomeAssistant, bridge_id: str) -> None:
        """Initialize for one bridge."""
        self.hass = hass
        self.bridge_id = bridge_id
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def __len__(self) -> int:
        """Return how many requests are waiting."""
        return len(self._futures)

    async def async_request(
        self,
        publish: Callable[[dict[str, Any]], Awaitable[None]],
        payload: dict[str, Any],
        timeout: float,
    ) -> dict[str, Any]:
        """Publish `payload` with a fresh request_id and return the bridge's answer to it.

        Raises a translated HomeAssistantError when no answer comes within `timeout` seconds.
        """
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = self.hass.loop.create_future()
        self._futures[request_id] = future
        try:
            await publish({"request_id": request_id, **payload})
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="bridge_timeout",
                translation_placeholders={"bridge": self.bridge_id},
            ) from err
        finally:
            self._futures.pop(request_id, None)

    @callback
    def async_resolve(self, data: dict[str, Any] | None) -> None:
        """Hand an answer to the request it names; any other message is ignored."""
        if data is None or not isinstance(request_id := data.get("request_id"), str):
            return
        future = self._futures.get(request_id)
        if future is not None and not future.done():
            future.set_result(data)

    @callback
    def async_cancel_all(self) -> None:
        """Cancel every waiting request (the config entry is unloading)."""
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
