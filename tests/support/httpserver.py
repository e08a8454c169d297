"""A local HTTP object store for tests: serves bytes, errors, redirects, slow and huge bodies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[[BaseHTTPRequestHandler], None]


class ObjectStore:
    """Routes path → handler; ``put(path, bytes)`` for plain 200 responses. Counts hits per path."""

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}{path}"

    def put(self, path: str, body: bytes, content_type: str = "image/jpeg", status: int = 200) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        self.routes[path] = route
        return self.url(path)

    def status(self, path: str, code: int) -> str:
        return self.put(path, f"error {code}".encode(), "text/plain", code)

    def redirect(self, path: str, location: str) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(302)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
        self.routes[path] = route
        return self.url(path)

    def hang(self, path: str, seconds: float = 30.0) -> str:
        def route(h: BaseHTTPRequestHandler) -> None:
            time.sleep(seconds)
        self.routes[path] = route
        return self.url(path)

    def huge(self, path: str, total_bytes: int, declare_length: bool = False) -> str:
        """Streams ``total_bytes`` in 64 KiB chunks (chunked encoding unless declared)."""
        def route(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "image/jpeg")
            if declare_length:
                h.send_header("Content-Length", str(total_bytes))
            else:
                h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            chunk = b"\xff" * 65536
            sent = 0
            try:
                while sent < total_bytes:
                    if declare_length:
                        h.wfile.write(chunk)
                    else:
                        h.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
                if not declare_length:
                    h.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            h.server.sent_bytes = sent  # type: ignore[attr-defined]
        self.routes[path] = route
        return self.url(path)

    def __enter__(self) -> "ObjectStore":
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                store.hits[path] = store.hits.get(path, 0) + 1
                route = store.routes.get(path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    route(self)

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._server.sent_bytes = 0  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
