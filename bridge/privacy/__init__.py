"""Privacy: the owner's policy, its durable store, address locality checks, the locality gate,
audit and retention.

Everything here is small and testable on its own; the MQTT service wires it together.
"""

from __future__ import annotations

from .audit import AuditEntry, AuditLog, EngineUse
from .gate import LocalityGate
from .locality import (
    CheckedEndpoint,
    CloudRefused,
    classify_address,
    open_connection_checked,
    resolve_endpoint,
)
from .policy import MicrophoneMute, Policy, PolicyError, Retention
from .retention import RetainedUtterance, UtteranceRetention
from .store import AuditStore, PolicyStore

__all__ = [
    "AuditEntry",
    "AuditLog",
    "AuditStore",
    "CheckedEndpoint",
    "CloudRefused",
    "EngineUse",
    "LocalityGate",
    "MicrophoneMute",
    "Policy",
    "PolicyError",
    "PolicyStore",
    "RetainedUtterance",
    "Retention",
    "UtteranceRetention",
    "classify_address",
    "open_connection_checked",
    "resolve_endpoint",
]
