"""Free loopback ports, chosen outside the kernel's ephemeral range.

Ports from the ephemeral range (32768-60999 on Linux) are what outgoing connections get,
so a broker restarted on one could find it taken by a client socket meanwhile. Picking at
random below that range also keeps concurrent instances (team members, CI jobs) apart.
"""
from __future__ import annotations

import random
import socket
from collections.abc import Iterable

HOST = "127.0.0.1"


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def is_free(port: int, host: str = HOST) -> bool:
    """True if nothing holds `port` on `host` (bind without SO_REUSEADDR, so TIME_WAIT counts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(exclude: Iterable[int] = (), host: str = HOST) -> int:
    """A port that is free now on `host`, below the ephemeral range when there is room."""
    excluded = set(exclude)
    low, _ = _ephemeral_range()
    lo, hi = (10000, low - 1) if low > 11000 else (1024, 65535)
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(lo, hi)
        if port not in excluded and is_free(port, host):
            return port
    # Fall back to whatever the kernel hands out.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
