"""Hearth bridge: private, local voice control for Home Assistant over MQTT."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
