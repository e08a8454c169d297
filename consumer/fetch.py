"""Claim-check fetching with an SSRF guard.

A URL in an event is attacker-controlled, so before any byte is sent:

* the scheme must be in the allow-list (http/https by default: no file://,
  ftp://, gopher://);
* the host must match the host allow-list when one is configured;
* **every** address the host resolves to (A and AAAA) must be public — not
  loopback, private, link-local (cloud metadata 169.254.169.254), shared,
  reserved or multicast — unless it lies in an explicitly allowed network;
  the connection then goes to one of those checked addresses, so a DNS answer
  cannot change between check and use (rebinding);
* redirects are followed by hand, at most ``max_redirects``, each re-checked;
* the body is streamed and abandoned at ``max_bytes`` (never buffered whole),
  and the whole fetch has a deadline, not just per-read timeouts.

HTTP 404/410/4xx are permanent; 408/425/429/5xx, timeouts and connection
errors are transient (the caller retries them a bounded number of times).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, LocationParseError, NewConnectionError
from urllib3.util import parse_url

from consumer.errors import STAGE_FETCH, PermanentError, TransientError

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 64 * 1024


class ForbiddenAddress(PermanentError):
    """The URL's host resolves to an address we must never connect to."""


def is_forbidden_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                    allowed: Iterable[Network] = ()) -> bool:
    """True for anything but a globally routable unicast address (outside ``allowed``)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed):
        return False
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


@dataclass(frozen=True)
class FetchPolicy:
    """What the fetcher may do; built from Settings."""

    allowed_schemes: tuple[str, ...] = ("https", "http")
    allowed_hosts: tuple[str, ...] = ()  # empty: any public host; "*.example.com" for subdomains
    allowed_networks: tuple[Network, ...] = field(default_factory=tuple)
    timeout_s: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 3

    def host_allowed(self, host: str) -> bool:
        if not self.allowed_hosts:
            return True
        host = host.lower().rstrip(".")
        for pattern in self.allowed_hosts:
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and host != pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


def resolve_checked(host: str, port: int, policy: FetchPolicy) -> list[tuple]:
    """getaddrinfo → list of sockaddr-bearing tuples, all checked; raise if any is forbidden."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            raise PermanentError(STAGE_FETCH, "dns_not_found", f"{host}: {exc.strerror}") from exc
        raise TransientError(STAGE_FETCH, "dns_error", f"{host}: {exc}") from exc
    if not infos:
        raise PermanentError(STAGE_FETCH, "dns_not_found", host)
    for family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if is_forbidden_ip(ip, policy.allowed_networks):
            # One bad answer taints the name: an attacker controls which one we would pick.
            raise ForbiddenAddress(STAGE_FETCH, "forbidden_address", f"{host} resolves to {ip}")
    return infos


class _GuardedMixin:
    """Replaces urllib3's connect: resolve, check every address, connect to a checked one."""

    policy: FetchPolicy

    def _new_conn(self) -> socket.socket:  # type: ignore[override]
        host, port = self._dns_host, self.port  # type: ignore[attr-defined]
        infos = resolve_checked(host, port, self.policy)
        last: OSError | None = None
        for family, socktype, proto, _canon, sockaddr in infos:
            sock = socket.socket(family, socktype, proto)
            try:
                timeout = self.timeout  # type: ignore[attr-defined]
                if isinstance(timeout, (int, float)):
                    sock.settimeout(timeout)
                for opt in self.socket_options or ():  # type: ignore[attr-defined]
                    sock.setsockopt(*opt)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        raise NewConnectionError(self, f"cannot connect to {host}:{port}: {last}")  # type: ignore[arg-type]


def _pool_classes(policy: FetchPolicy) -> dict[str, type]:
    http_conn = type("GuardedHTTPConnection", (_GuardedMixin, HTTPConnection), {"policy": policy})
    https_conn = type("GuardedHTTPSConnection", (_GuardedMixin, HTTPSConnection), {"policy": policy})
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class Fetcher:
    """Thread-safe: one connection pool per host, shared by the fetch workers."""

    def __init__(self, policy: FetchPolicy, pool_size: int = 16) -> None:
        self.policy = policy
        self._http = urllib3.PoolManager(num_pools=64, maxsize=pool_size, retries=False)
        self._http.pool_classes_by_scheme = _pool_classes(policy)

    def check_url(self, url: str) -> tuple[str, str]:
        """Validate scheme and host (not yet the addresses); returns (scheme, host)."""
        try:
            parsed = parse_url(url)
        except LocationParseError as exc:
            raise PermanentError(STAGE_FETCH, "invalid_url", str(exc)[:200]) from exc
        scheme = (parsed.scheme or "").lower()
        if scheme not in self.policy.allowed_schemes:
            raise PermanentError(STAGE_FETCH, "forbidden_scheme", f"scheme {scheme or '(none)'!r} not allowed")
        host = (parsed.host or "").strip("[]")
        if not host:
            raise PermanentError(STAGE_FETCH, "invalid_url", "URL has no host")
        if parsed.auth:
            raise PermanentError(STAGE_FETCH, "invalid_url", "credentials in URLs are not allowed")
        if not self.policy.host_allowed(host):
            raise PermanentError(STAGE_FETCH, "forbidden_host", f"host {host} is not in the allow-list")
        return scheme, host

    def fetch(self, url: str) -> bytes:
        """GET ``url`` under the policy; raise PermanentError or TransientError."""
        deadline = time.monotonic() + self.policy.timeout_s
        for _hop in range(self.policy.max_redirects + 1):
            self.check_url(url)
            remaining = max(0.05, deadline - time.monotonic())
            try:
                response = self._http.request(
                    "GET", url, preload_content=False, redirect=False, retries=False,
                    timeout=urllib3.Timeout(connect=remaining, read=remaining),
                    headers={"User-Agent": "clazzify/1", "Accept": "image/*"})
            except (PermanentError, TransientError):
                raise
            except HTTPError as exc:
                cause = exc
                while getattr(cause, "reason", None) is not None and isinstance(cause.reason, Exception):
                    cause = cause.reason
                    if isinstance(cause, PermanentError):
                        raise cause from exc
                reason = "timeout" if "timed out" in str(exc).lower() or "timeout" in type(exc).__name__.lower() \
                    else "connection_error"
                raise TransientError(STAGE_FETCH, reason, str(exc)[:300]) from exc
            complete = False
            try:
                if response.status in (301, 302, 303, 307, 308):
                    location = response.headers.get("Location")
                    if not location:
                        raise PermanentError(STAGE_FETCH, "bad_redirect", f"{response.status} without Location")
                    url = urljoin(url, location)
                    continue
                if response.status in TRANSIENT_STATUS:
                    raise TransientError(STAGE_FETCH, f"http_{response.status}", url_for_log(url))
                if response.status != 200:
                    raise PermanentError(STAGE_FETCH, f"http_{response.status}", url_for_log(url))
                body = self._read_capped(response, deadline)
                complete = True
                return body
            finally:
                if not complete:
                    response.close()  # body not read: this connection must not be reused
                response.release_conn()
        raise PermanentError(STAGE_FETCH, "too_many_redirects", f"more than {self.policy.max_redirects}")

    def _read_capped(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        cap = self.policy.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise PermanentError(STAGE_FETCH, "too_large", f"Content-Length {declared} > cap {cap}")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.stream(_CHUNK):
                total += len(chunk)
                if total > cap:
                    raise PermanentError(STAGE_FETCH, "too_large", f"body exceeds cap {cap} bytes")
                if time.monotonic() > deadline:
                    raise TransientError(STAGE_FETCH, "timeout", "body not received within the deadline")
                chunks.append(chunk)
        except HTTPError as exc:
            raise TransientError(STAGE_FETCH, "connection_error", str(exc)[:300]) from exc
        return b"".join(chunks)


def url_for_log(url: str) -> str:
    """The URL without its query string (which often holds a presigned signature)."""
    return url.split("?", 1)[0][:300]


def parse_networks(spec: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in spec.split(",") if s.strip())
