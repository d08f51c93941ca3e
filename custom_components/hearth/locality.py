"""Where an IP address is: the integration's copy of the bridge's address table.

The bridge (bridge/privacy/locality.py) and the integration must call the same addresses
local, or an engine would be refused on one side and trusted on the other. The integration does
not import the bridge, so this is a copy: the same networks and the same ``address_class``
function, which tests/bridge/test_contract.py compares with the bridge's on a list of addresses.

Classification uses explicit tables, not :attr:`ipaddress.IPv4Address.is_private` (which also
calls documentation and benchmark ranges such as 198.51.100.0/24 "private").
"""

from __future__ import annotations

import ipaddress
from typing import Final

LOOPBACK_NETWORKS: Final[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
# Home-network ranges. 100.64.0.0/10 (carrier-grade NAT, also Tailscale) is deliberately NOT
# here: those addresses belong to the ISP's or an overlay network that may span the internet.
LAN_NETWORKS: Final[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fc00::/7"),  # IPv6 unique-local
)


def address_class(ip: str) -> str:
    """Return ``"loopback"``, ``"lan"`` or ``"public"`` for an IP literal; malformed: public.

    IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are judged by their IPv4 address, and a
    ``%zone`` suffix and ``[brackets]`` are accepted.
    """
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        return "public"  # fail closed
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id is not None:
            addr = ipaddress.IPv6Address(text.split("%", 1)[0])
        if addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
    if any(addr in net for net in LOOPBACK_NETWORKS):
        return "loopback"
    if any(addr in net for net in LAN_NETWORKS):
        return "lan"
    return "public"


def is_ip_literal(text: str) -> bool:
    """Return whether `text` (optionally in brackets, with a %zone) is an IP address."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
