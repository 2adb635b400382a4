"""Test-wide guards: nothing in the suite may open a connection beyond loopback, nor trace."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

# No test traces: Powertools Tracer must neither patch botocore nor look for an X-Ray daemon.
os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(address: Any) -> None:
    if not isinstance(address, tuple):
        return  # unix sockets
    host = str(address[0])
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ConnectionRefusedError(f"tests may only connect to loopback, not {host}")


def _connect(self: socket.socket, address: Any) -> None:
    _check(address)
    return _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
