"""The locality gate: the one place the bridge decides whether data may leave for an address.

Everything that sends audio or text off the bridge's processes asks this gate first: the Wyoming
speech-to-text and text-to-speech engines connect only through :meth:`LocalityGate.connect`, and
the forward to Home Assistant's Assist pipeline (which leaves through the MQTT broker) asks
:meth:`LocalityGate.check` with the broker's address class before it publishes anything. The gate
reads the owner's current policy on every call and counts every refusal in the audit log
(:meth:`bridge.privacy.audit.AuditLog.count_blocked`), so a refusal is counted once, where it
happens, whoever asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .audit import AuditLog
from .locality import (
    CheckedEndpoint,
    CloudRefused,
    effective_address_class,
    locality_of_class,
    open_connection_checked,
)
from .policy import Policy

REASON_LOCAL_ONLY = "local_only"


class LocalityGate:
    """Refuses (and counts) what local-only forbids; connects to checked endpoints.

    Args:
        policy: returns the owner's current policy; asked on every check.
        audit: where refusals are counted.
    """

    def __init__(self, policy: Callable[[], Policy], audit: AuditLog) -> None:
        self._policy = policy
        self.audit = audit

    @property
    def policy(self) -> Policy:
        """The owner's policy now."""
        return self._policy()

    def allows(self, address_class: str) -> bool:
        """Whether data may go to an address of this class now (nothing is counted)."""
        return self._policy().allows(locality_of_class(address_class))

    def check(self, engine: str, address_class: str, *, host: str = "") -> None:
        """Allow sending `engine`'s data to an address of `address_class`, or refuse it.

        `address_class` is ``"none"``, ``"loopback"``, ``"lan"`` or ``"public"``; anything else
        counts as public. Under local-only a public address raises :class:`CloudRefused` (reason
        ``"local_only"``; `host` names the destination in its message) and is counted as
        blocked for `engine`.
        """
        self._check(self._policy(), engine, address_class, host)

    async def connect(
        self, endpoint: CheckedEndpoint, engine: str, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a TCP connection to `endpoint`'s checked addresses if the policy allows it.

        The endpoint is re-checked against every one of its addresses; a refusal raises
        :class:`CloudRefused` before any socket exists and is counted. Otherwise as
        :func:`bridge.privacy.locality.open_connection_checked` (OSError, TimeoutError).
        """
        policy = self._policy()
        self._check(policy, engine, effective_address_class(endpoint), endpoint.host)
        return await open_connection_checked(endpoint, policy, engine, timeout)

    def _check(self, policy: Policy, engine: str, address_class: str, host: str) -> None:
        if policy.allows(locality_of_class(address_class)):
            return
        self.audit.count_blocked(engine, REASON_LOCAL_ONLY)
        raise CloudRefused(engine, host, REASON_LOCAL_ONLY)


__all__ = ["REASON_LOCAL_ONLY", "LocalityGate"]
