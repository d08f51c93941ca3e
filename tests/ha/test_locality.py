"""The integration's address table (the same as the bridge's): literal addresses only."""

from __future__ import annotations

from custom_components.hearth.locality import address_class, is_ip_literal
from custom_components.hearth.voice import address_is_public


def test_address_class() -> None:
    assert address_class("[::1]") == "loopback"
    assert address_class("fe80::1%eth0") == "lan"
    assert address_class("::ffff:10.0.0.1") == "lan"
    assert address_class("::ffff:8.8.8.8") == "public"
    assert address_class("192.168.1.20") == "lan"
    assert address_class("not an address") == "public"  # fail closed


def test_ip_literals() -> None:
    assert is_ip_literal("[::1]")
    assert is_ip_literal(" 10.0.0.1 ")
    assert not is_ip_literal("homeassistant.local")
    assert address_is_public("http://8.8.8.8:11434")
    assert not address_is_public("http://ollama.home.lan:11434")
    assert not address_is_public("192.168.1.20:11434")
