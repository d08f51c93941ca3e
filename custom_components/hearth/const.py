"""Constants for the Hearth integration, including its copy of the bridge's contract.

The integration never imports the bridge, so what both sides must agree on (the protocol
version, the audio frame header, the wake word names, the satellite id pattern) is copied
here, once; tests/bridge/test_contract.py asserts each copy equals the bridge's. The address
table is copied in locality.py and the WAV helpers in wav.py, compared by the same test.
"""

from __future__ import annotations

import re
import struct
from typing import Final

DOMAIN: Final = "hearth"
MANUFACTURER: Final = "Hearth"

CONF_PREFIX: Final = "prefix"
CONF_BRIDGE_ID: Final = "bridge_id"
# The key privacy and settings commands are signed with (pairing.py), 64 hex digits.
CONF_PAIRING_KEY: Final = "pairing_key"
CONF_SATELLITES: Final = "satellites"
CONF_AGENT_ID: Final = "agent_id"
CONF_SHOW_TRANSCRIPTS: Final = "show_transcripts"
CONF_SATELLITE: Final = "satellite"
CONF_PIPELINE: Final = "pipeline"
# Bridge-wide: the grammar also accepts "please" / "can you" ... (vocabulary "polite").
CONF_POLITE: Final = "polite_commands"
# The pipeline option that means: the bridge recognizes, the satellite's agent answers.
HEARTH_PIPELINE: Final = "hearth"

DEFAULT_PREFIX: Final = "hearth"

# -- the bridge's contract (docs/protocol.md); tests/bridge/test_contract.py compares these
# The protocol version this integration speaks (bridge `bridge/status` "protocol").
PROTOCOL_VERSION: Final = 1
# Every version the integration can talk to; another one raises a repair issue.
SUPPORTED_PROTOCOL_VERSIONS: Final = frozenset({PROTOCOL_VERSION})
# An audio frame's 12-byte header: version, flags, reserved, stream id, sequence number.
FRAME_HEADER: Final = struct.Struct("<BBHII")
FLAG_LAST: Final = 0x01
# A satellite id: 1-64 characters from [A-Za-z0-9_.:@-] (a topic level, a device identifier;
# Hermes site ids such as "living.room" or "pi@kitchen" included; never "/", "+", "#").
SATELLITE_ID_PATTERN: Final = r"[A-Za-z0-9_.:@-]{1,64}"  # matched whole (fullmatch)
SATELLITE_ID: Final = re.compile(SATELLITE_ID_PATTERN)
# The wake words the bridge can listen for (docs/protocol.md, satellite status).
WAKE_WORDS: Final = ["okay_nabu", "hey_jarvis", "hey_mycroft", "alexa"]

# How long the manual config flow waits for a retained bridge status.
DISCOVERY_TIMEOUT: Final = 3.0
# How long a policy command or purge waits for the bridge's answer.
REQUEST_TIMEOUT: Final = 5.0
# Vocabulary republish cooldown after registry or exposure changes.
VOCABULARY_COOLDOWN: Final = 2.0
# A conversation is continued if the satellite speaks again within this many seconds.
CONVERSATION_TIMEOUT: Final = 300.0

# Announcements: how long the bridge may take to start speaking, then to finish.
ANNOUNCE_START_TIMEOUT: Final = 15.0
ANNOUNCE_TIMEOUT: Final = 120.0
RETENTION_OPTIONS: Final = ["none", "memory"]
SATELLITE_STATES: Final = [
    "idle",
    "listening",
    "transcribing",
    "processing",
    "responding",
    "error",
]
EVENT_WAKE: Final = "wake"
EVENT_INTENT: Final = "intent"
EVENT_ERROR: Final = "error"
EVENT_QUESTION: Final = "question"
EVENT_ANSWER: Final = "answer"
EVENT_TYPES: Final = [
    EVENT_WAKE,
    EVENT_INTENT,
    EVENT_ERROR,
    EVENT_QUESTION,
    EVENT_ANSWER,
]
# When the bridge asks back before acting (a satellite's `confirm` setting, docs/protocol.md).
CONFIRM_MODES: Final = ["unsure", "sensitive", "never"]

# Vocabulary limits from docs/protocol.md.
MAX_ENTITIES: Final = 2000
MAX_AREAS: Final = 500
MAX_FLOORS: Final = 100
MAX_ALIASES: Final = 20
MAX_NAME_LENGTH: Final = 100

# Repair issue raised while the bridge advertises a protocol version the integration lacks.
ISSUE_UNSUPPORTED_PROTOCOL: Final = "unsupported_protocol"
#: The bridge refused a satellite: its table is full (the bridge's error code, and the issue's key).
ISSUE_TOO_MANY_SATELLITES: Final = "too_many_satellites"
#: Errors the bridge sends a satellite it does not serve (any id can be made up): no device for it.
NOT_SERVED_CODES: Final = frozenset({ISSUE_TOO_MANY_SATELLITES, "unknown_satellite"})
# Repair issues when the bridge lost its policy: re-applied (a notice), or not yet.
ISSUE_POLICY_RESET: Final = "policy_reset"
ISSUE_POLICY_RESET_PENDING: Final = "policy_reset_pending"
# Repair issue when the bridge refused a command that was not signed with its pairing key.
ISSUE_COMMANDS_REFUSED: Final = "commands_refused"

SERVICE_MUTE: Final = "mute"
SERVICE_PURGE_HISTORY: Final = "purge_history"
ATTR_DURATION: Final = "duration"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
