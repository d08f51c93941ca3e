"""Test network guard, loaded by every Python process whose PYTHONPATH starts with this folder.

Only active when HEARTH_NETGUARD_DIR is set. A `sys.addaudithook` hook records every
`socket.connect`, `socket.sendto`, `socket.sendmsg` and name lookup (`socket.getaddrinfo`,
`gethostbyname`, ...) of this process as one JSON line in `$HEARTH_NETGUARD_DIR/<pid>.jsonl`:
the event, the address family, host and port, and a verdict. Never any content (audit events
for sends carry only the address anyway). The first line of each file is a `start` record with
the process's command line, so a test can check that the guard was present in every process.

Verdicts: `loopback` (127.0.0.0/8, ::1, `localhost`), `local` (AF_UNIX, netlink: not a
network), `literal` (a lookup of a numeric IP: no DNS, nothing sent) and `violation`
(anything else: a connect or send to a non-loopback address, or a DNS name lookup).

With HEARTH_NETGUARD_MODE=raise a violation raises PermissionError *before* the socket call
runs, so even a broken bridge cannot send a packet off the machine during a test.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading

_DIR = os.environ.get("HEARTH_NETGUARD_DIR")
_RAISE = os.environ.get("HEARTH_NETGUARD_MODE", "record") == "raise"
_CONNECTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_LOOKUPS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
                      "socket.gethostbyaddr", "socket.getnameinfo"})
_busy = threading.local()


def _write(record: dict) -> None:
    record.setdefault("pid", os.getpid())
    line = (json.dumps(record, default=repr) + "\n").encode()
    fd = os.open(os.path.join(_DIR, f"{os.getpid()}.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _host_verdict(host: object, lookup: bool) -> str:
    if host is None:
        return "loopback"  # passive / local lookups (bind to any, service names)
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    text = str(host).strip("[]").split("%", 1)[0]
    if text.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return "loopback"
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return "violation"  # a name: resolving it may ask a DNS server off the machine
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "loopback"
    return "literal" if lookup else "violation"


def _hook(event: str, args: tuple) -> None:
    if not event.startswith("socket.") or getattr(_busy, "on", False):
        return
    if event in _CONNECTS:
        sock, address = args[0], args[1]
        family = getattr(sock, "family", None)
        if address is None:  # sendmsg on a connected socket: its connect was checked
            return
        if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            host, port = address[0], address[1] if len(address) > 1 else None
            verdict = _host_verdict(host, lookup=False)
        else:
            host, port, verdict = str(address), None, "local"
        family_name = getattr(family, "name", str(family))
    elif event in _LOOKUPS:
        host = args[0] if args else None
        port = args[1] if event == "socket.getaddrinfo" and len(args) > 1 else None
        if event in ("socket.gethostbyaddr", "socket.getnameinfo"):
            if isinstance(host, tuple):
                host, port = host[0], host[1] if len(host) > 1 else None
            verdict = _host_verdict(host, lookup=False)  # a reverse lookup of a public address asks DNS
        else:
            verdict = _host_verdict(host, lookup=True)
        family_name = None
    else:
        return
    _busy.on = True
    try:
        _write({"event": event, "family": family_name, "host": host, "port": port, "verdict": verdict})
    finally:
        _busy.on = False
    if _RAISE and verdict == "violation":
        raise PermissionError(f"hearth netguard: {event} to {host!r} refused in a test")


if _DIR:
    os.makedirs(_DIR, exist_ok=True)
    _write({"event": "start", "argv": list(getattr(sys, "orig_argv", sys.argv)), "ppid": os.getppid()})
    sys.addaudithook(_hook)
