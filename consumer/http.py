"""The service port: ``/metrics``, ``/healthz``, ``/readyz`` and ``POST /v1/classify``.

* ``/healthz`` — liveness: the main loop is turning (restart the pod if not);
* ``/readyz`` — readiness: Kafka, PostgreSQL and the model are all up (503 with
  the failing checks as JSON otherwise);
* ``/metrics`` — Prometheus exposition of the service's own registry;
* ``POST /v1/classify`` — synchronous classification through the same batcher
  and model as the Kafka path: a body of image bytes (``Content-Type: image/*``)
  or JSON ``{"url": ...}`` under the same fetch rules. Bearer token when one is
  configured, a request-size cap and a token-bucket rate limit.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from consumer.errors import ClazzifyError, PermanentError, TransientError
from consumer.metrics import Metrics

logger = logging.getLogger(__name__)

ClassifyFn = Callable[[bytes | None, str | None, float], dict[str, float]]


class RateLimiter:
    """Token bucket: ``rate`` requests per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = burst
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.rate <= 0:
            return True
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


@dataclass
class HttpConfig:
    host: str
    port: int
    token: str = ""
    max_body_bytes: int = 20 * 1024 * 1024
    rate_per_s: float = 50.0
    timeout_s: float = 30.0


class ServiceHttp:
    """A small threaded HTTP server bound to the app through callbacks."""

    def __init__(self, config: HttpConfig, metrics: Metrics, live: Callable[[], bool],
                 ready: Callable[[], dict[str, bool]], classify: ClassifyFn | None) -> None:
        self.config = config
        self.metrics = metrics
        self.live = live
        self.ready = ready
        self.classify = classify
        self.limiter = RateLimiter(config.rate_per_s, max(1.0, config.rate_per_s))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def start(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "clazzify"

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet: metrics count requests
                logger.debug("http %s", fmt % args)

            def _send(self, code: int, body: bytes, content_type: str = "application/json",
                      extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                path = self.path.split("?", 1)[0]
                known = path if path in ("/metrics", "/healthz", "/readyz", "/v1/classify") else "other"
                service.metrics.http_requests.labels(known, str(code)).inc()

            def _json(self, code: int, doc: Any, extra: dict[str, str] | None = None) -> None:
                self._send(code, json.dumps(doc).encode(), extra=extra)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(service.metrics.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    alive = service.live()
                    self._json(200 if alive else 503, {"alive": alive})
                elif path == "/readyz":
                    checks = service.ready()
                    ok = all(checks.values())
                    self._json(200 if ok else 503, {"ready": ok, "checks": checks})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                if self.path.split("?", 1)[0] != "/v1/classify" or service.classify is None:
                    self._json(404, {"error": "not found"})
                    return
                service.handle_classify(self)

        self._server = ThreadingHTTPServer((self.config.host, self.config.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()
        logger.info("serving /metrics /healthz /readyz /v1/classify on %s:%d", self.config.host, self.port)

    def handle_classify(self, req: Any) -> None:
        cfg = self.config
        if cfg.token:
            auth = req.headers.get("Authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {cfg.token}".encode()):
                req._json(401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"})
                return
        if not self.limiter.allow():
            req._json(429, {"error": "rate limit exceeded"}, {"Retry-After": "1"})
            return
        length_header = req.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            req._json(411, {"error": "Content-Length required"})
            return
        length = int(length_header)
        if length > cfg.max_body_bytes:
            # Read (and drop) a moderately oversized body so the client, still sending, gets the
            # 413 instead of a broken pipe; a far larger one is cut off without reading it.
            if length <= 2 * cfg.max_body_bytes:
                remaining = length
                while remaining > 0:
                    chunk = req.rfile.read(min(remaining, 65536))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            req.close_connection = True
            req._json(413, {"error": f"body larger than {cfg.max_body_bytes} bytes"})
            return
        body = req.rfile.read(length)
        content_type = (req.headers.get("Content-Type") or "").lower()
        data, url = None, None
        if content_type.startswith("application/json"):
            try:
                doc = json.loads(body)
                url = doc["url"] if isinstance(doc, dict) and isinstance(doc.get("url"), str) else None
            except (ValueError, UnicodeDecodeError):
                url = None
            if url is None:
                req._json(400, {"error": "JSON body must be {\"url\": \"...\"}"})
                return
        else:
            data = body
        assert self.classify is not None
        try:
            scores = self.classify(data, url, cfg.timeout_s)
        except PermanentError as exc:
            req._json(422, {"error": exc.reason, "stage": exc.stage, "detail": exc.detail})
            return
        except (TransientError, TimeoutError) as exc:
            req._json(503, {"error": getattr(exc, "reason", "timeout"), "detail": str(exc)}, {"Retry-After": "1"})
            return
        except ClazzifyError as exc:
            req._json(503, {"error": exc.reason, "detail": exc.detail})
            return
        top = max(scores, key=scores.get)
        req._json(200, {"label": top, "score": scores[top], "scores": scores})

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
