"""Hostile and bad input against the real broker and database (issue 5, "Hostile and bad input").

One consumer subprocess reads a topic holding every case at once. Each case ends either as a
row (odd but valid images: animated GIF, 16-bit PNG, CMYK JPEG…, and transient failures that
recover) or as a dead letter whose stage/reason headers say exactly why. The consumer never
crashes, keeps serving afterwards, and its peak resident memory (VmHWM) stays under a cap.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from http.server import BaseHTTPRequestHandler

import numpy as np
import pytest
from PIL import Image

from consumer.deadletter import H_ATTEMPTS, H_MESSAGE, H_OFFSET, H_REASON, H_STAGE, H_TOPIC
from tests.support import faults_harness as fh
from tests.support import harness as h
from tests.support.httpserver import ObjectStore

MEMORY_CAP_BYTES = 1024 * 1024 * 1024  # 1 GiB: a replica's container limit (deploy/k8s) is above this
FETCH_CAP_BYTES = 8 * 1024 * 1024
HUGE_BYTES = 100 * 1024 * 1024
FETCH_RETRIES = 2


# ------------------------------------------------------------------------------ payloads
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` RGB pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + _png_chunk(b"IEND", b""))


def psd(width: int = 8, height: int = 8) -> bytes:
    header = b"8BPS" + struct.pack(">H", 1) + b"\0" * 6 + struct.pack(">HIIHH", 3, height, width, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + b"\x80" * (width * height * 3)


def fits() -> bytes:
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    2",
             "NAXIS1  =                    8", "NAXIS2  =                    8", "END"]
    return "".join(c.ljust(80) for c in cards).ljust(2880).encode() + bytes(2880)


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (48, 48), c) for c in [(230, 40, 30), (20, 20, 200), (20, 200, 20)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def png16() -> bytes:
    arr = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    return encoded(Image.fromarray(arr), "PNG")


def palette_png_with_transparency() -> bytes:
    image = Image.new("P", (40, 40), 1)
    image.putpalette([0, 0, 0, 250, 120, 20] + [0] * 762)
    return encoded(image, "PNG", transparency=0)


# ----------------------------------------------------------------------------- routes
def huge_route(store: ObjectStore, path: str, total: int, declare_length: bool, sent: dict[str, int]) -> str:
    """Like ObjectStore.huge, but records how much was really sent per path."""
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/jpeg")
        if declare_length:
            handler.send_header("Content-Length", str(total))
        else:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"\xff" * 65536
        sent[path] = 0
        try:
            while sent[path] < total:
                handler.wfile.write(chunk if declare_length else b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent[path] += len(chunk)
            if not declare_length:
                handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    store.routes[path] = route
    return store.url(path)


def flaky_route(store: ObjectStore, path: str, body: bytes, failures: int) -> str:
    """503 for the first ``failures`` requests, then the image."""
    def route(handler: BaseHTTPRequestHandler) -> None:
        if store.hits[path] <= failures:
            handler.send_response(503)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    store.routes[path] = route
    return store.url(path)


# ------------------------------------------------------------------------------ cases
def raw_event(key: str | None, value: bytes, headers: list | None = None) -> tuple:
    return (key.encode() if key is not None else None, value, headers or [])


def build_cases(store: ObjectStore, sent: dict[str, int]) -> tuple[list[tuple], dict, dict, dict]:
    """(records, dead: key → (stage, reason, expected hits or None), good: key → bytes, key → store path)."""
    port = int(store.url("/").rsplit(":", 1)[1].split("/")[0])
    good = h.jpeg(11, size=(96, 96))
    dead: dict[str, tuple[str, str, int | None]] = {}
    rows: dict[str, bytes] = {}
    records: list[tuple] = []
    paths: dict[str, str] = {}

    def inline_bad(key: str, data: bytes, stage: str, reason: str) -> None:
        records.append(h.inline(key, data))
        dead[key] = (stage, reason, None)

    def url_bad(key: str, url: str, stage: str, reason: str, hits_path: str | None = None,
                hits: int | None = None) -> None:
        records.append(h.claim_check(key, url))
        dead[key] = (stage, reason, hits)
        if hits_path:
            paths[key] = hits_path

    def inline_good(key: str, data: bytes, content_type: bytes = b"image/jpeg") -> None:
        records.append((key.encode(), data, [("content-type", content_type)]))
        rows[key] = data

    # --- bytes that are not a usable image (inline) ---
    inline_bad("truncated-jpeg", good[: len(good) // 2], "decode", "corrupt_image")
    inline_bad("random-bytes", np.random.default_rng(1).bytes(5000), "decode", "not_an_image")
    inline_bad("plain-text", b"hello, this is not an image at all\n" * 20, "decode", "not_an_image")
    inline_bad("png-bomb-50000x50000", png_declaring(50000, 50000), "decode", "decompression_bomb")
    # 12000x12000 = 144 MP: Pillow alone would only *warn* (below 2x its limit); our cap refuses it.
    inline_bad("png-bomb-warn-zone", png_declaring(12000, 12000), "decode", "decompression_bomb")
    inline_bad("tiff", encoded(Image.new("RGB", (32, 32), (200, 30, 30)), "TIFF"), "decode", "unsupported_format")
    inline_bad("psd", psd(), "decode", "unsupported_format")
    inline_bad("fits", fits(), "decode", "unsupported_format")
    inline_bad("ico", encoded(Image.new("RGB", (32, 32)), "ICO"), "decode", "unsupported_format")
    inline_bad("ppm", encoded(Image.new("RGB", (32, 32)), "PPM"), "decode", "unsupported_format")
    inline_bad("pcx", encoded(Image.new("RGB", (32, 32)), "PCX"), "decode", "unsupported_format")
    inline_bad("svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
               b'<rect width="10" height="10"/></svg>', "decode", "not_an_image")
    inline_bad("pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "decode", "not_an_image")
    noisy = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    png = encoded(Image.fromarray(noisy), "PNG")
    idat = png.find(b"IDAT")
    inline_bad("png-smashed-idat", png[:idat + 50] + b"\0" * 100 + png[idat + 150:], "decode", "corrupt_image")
    inline_bad("png-truncated", png[:idat + 200], "decode", "corrupt_image")
    # --- events that do not parse ---
    records.append(raw_event("zero-bytes", b"", [("content-type", b"image/jpeg")]))
    dead["zero-bytes"] = ("parse", "empty", None)
    records.append(raw_event("invalid-json", b'{"image_id": "x", "url": '))
    dead["invalid-json"] = ("parse", "invalid_json", None)
    records.append(raw_event("json-array", b"[1, 2, 3]"))
    dead["json-array"] = ("parse", "invalid_json", None)
    records.append(raw_event("json-deep", b'{"a": ' + b"[" * 20000 + b"]" * 20000 + b"}"))
    dead["json-deep"] = ("parse", "invalid_json", None)
    records.append(raw_event("no-image-id", json.dumps({"url": store.url("/x.jpg")}).encode()))
    dead["no-image-id"] = ("parse", "missing_image_id", None)
    records.append(raw_event("no-url", json.dumps({"image_id": "no-url"}).encode()))
    dead["no-url"] = ("parse", "missing_url", None)
    records.append(raw_event("huge-json", json.dumps({"image_id": "huge-json", "url": store.url("/x.jpg"),
                                                      "caption": "A" * 200_000}).encode()))
    dead["huge-json"] = ("parse", "event_too_large", None)
    records.append(raw_event("nul-id", json.dumps({"image_id": "a\u0000b", "url": store.url("/x.jpg")}).encode()))
    dead["nul-id"] = ("parse", "invalid_image_id", None)
    records.append((None, good, [("content-type", b"image/jpeg")]))  # inline image without a key
    dead[""] = ("parse", "missing_image_id", None)
    records.append((b"\xff\xfe-not-utf8", good, [("content-type", b"image/jpeg")]))
    dead["\ufffd\ufffd-not-utf8"] = ("parse", "invalid_image_id", None)
    # --- URLs the SSRF guard refuses before connecting ---
    url_bad("scheme-file", "file:///etc/passwd", "fetch", "forbidden_scheme")
    url_bad("scheme-ftp", "ftp://127.0.0.2/x.jpg", "fetch", "forbidden_scheme")
    url_bad("scheme-gopher", "gopher://127.0.0.2:70/_GET%20/", "fetch", "forbidden_scheme")
    url_bad("loopback-127.0.0.1", f"http://127.0.0.1:{port}/x.jpg", "fetch", "forbidden_address")
    url_bad("loopback-127.1", f"http://127.1:{port}/x.jpg", "fetch", "forbidden_address")
    url_bad("loopback-ipv6", f"http://[::1]:{port}/x.jpg", "fetch", "forbidden_address")
    url_bad("loopback-v4-mapped", f"http://[::ffff:127.0.0.1]:{port}/x.jpg", "fetch", "forbidden_address")
    url_bad("loopback-hex", f"http://0x7f000001:{port}/x.jpg", "fetch", "forbidden_address")
    url_bad("loopback-decimal", f"http://2130706433:{port}/x.jpg", "fetch", "forbidden_address")
    url_bad("metadata-169.254", "http://169.254.169.254/latest/meta-data/", "fetch", "forbidden_address")
    url_bad("private-10", "http://10.1.2.3/x.jpg", "fetch", "forbidden_address")
    url_bad("private-192.168", "http://192.168.0.10/x.jpg", "fetch", "forbidden_address")
    url_bad("shared-100.64", "http://100.64.0.1/x.jpg", "fetch", "forbidden_address")
    url_bad("unspecified-0.0.0.0", f"http://0.0.0.0:{port}/x.jpg", "fetch", "forbidden_address")
    url_bad("hostname-localhost", f"http://localhost:{port}/x.jpg", "fetch", "forbidden_address")
    url_bad("credentials-in-url", "http://user:pw@127.0.0.2/x.jpg", "fetch", "invalid_url")
    url_bad("redirect-to-private", store.redirect("/redir-private", f"http://127.0.0.1:{port}/x.jpg"),
            "fetch", "forbidden_address", "/redir-private", 1)
    url_bad("redirect-to-metadata", store.redirect("/redir-meta", "http://169.254.169.254/latest/"),
            "fetch", "forbidden_address", "/redir-meta", 1)
    url_bad("redirect-to-file", store.redirect("/redir-file", "file:///etc/shadow"),
            "fetch", "forbidden_scheme", "/redir-file", 1)
    url_bad("redirect-loop", store.redirect("/loop", store.url("/loop")), "fetch", "too_many_redirects",
            "/loop", 4)
    # --- what the object store answers ---
    url_bad("html-200", store.put("/error.html", b"<html><body><h1>Internal error</h1></body></html>",
                                  "text/html"), "decode", "not_an_image", "/error.html", 1)
    url_bad("empty-200", store.put("/empty.jpg", b""), "decode", "empty", "/empty.jpg", 1)
    url_bad("huge-chunked", huge_route(store, "/huge-chunked.jpg", HUGE_BYTES, False, sent), "fetch",
            "too_large", "/huge-chunked.jpg", 1)
    url_bad("huge-declared", huge_route(store, "/huge-declared.jpg", HUGE_BYTES, True, sent), "fetch",
            "too_large", "/huge-declared.jpg", 1)
    url_bad("http-404", store.url("/missing.jpg"), "fetch", "http_404", "/missing.jpg", 1)
    url_bad("http-410", store.status("/gone.jpg", 410), "fetch", "http_410", "/gone.jpg", 1)
    url_bad("http-403", store.status("/forbidden.jpg", 403), "fetch", "http_403", "/forbidden.jpg", 1)
    url_bad("http-500", store.status("/e500.jpg", 500), "fetch", "http_500", "/e500.jpg", FETCH_RETRIES + 1)
    url_bad("http-503", store.status("/e503.jpg", 503), "fetch", "http_503", "/e503.jpg", FETCH_RETRIES + 1)
    url_bad("never-answers", store.hang("/hang.jpg", 4.0), "fetch", "timeout", "/hang.jpg", FETCH_RETRIES + 1)
    # --- odd but valid: classified ---
    inline_good("animated-gif", animated_gif(), b"image/gif")
    inline_good("png-16bit", png16(), b"image/png")
    inline_good("cmyk-jpeg", encoded(Image.new("CMYK", (64, 64), (0, 200, 200, 0)), "JPEG"))
    inline_good("grayscale-jpeg", encoded(Image.new("L", (64, 48), 90), "JPEG"))
    inline_good("palette-png-transparent", palette_png_with_transparency(), b"image/png")
    inline_good("webp", encoded(Image.new("RGB", (50, 30), (30, 160, 60)), "WEBP"), b"image/webp")
    inline_good("bmp", encoded(Image.new("RGB", (33, 17), (250, 240, 230)), "BMP"), b"image/bmp")
    inline_good("one-pixel-png", encoded(Image.new("RGB", (1, 1), (10, 10, 10)), "PNG"), b"image/png")
    inline_good("x'); DROP TABLE image_classifications;--", good)
    flaky_png = encoded(Image.new("RGB", (40, 40), (240, 200, 160)), "PNG")
    records.append(h.claim_check("recovers-after-503", flaky_route(store, "/flaky.png", flaky_png, 1)))
    rows["recovers-after-503"] = flaky_png
    paths["recovers-after-503"] = "/flaky.png"
    records.append(h.claim_check("url-ok", store.put("/ok.jpg", good)))
    rows["url-ok"] = good
    return records, dead, rows, paths


@pytest.mark.slow
def test_hostile_inputs_are_dead_lettered_with_reasons_and_memory_stays_capped(
        kafka_bootstrap, database_url, db_schema, new_topic, tmp_path):
    topic = new_topic(2)
    dlq = new_topic(1, prefix="dlq")
    model = h.model_file(tmp_path)
    sent: dict[str, int] = {}
    started = time.monotonic()
    with ObjectStore("127.0.0.2") as store:
        records, dead, good, paths = build_cases(store, sent)
        assert len(dead) + len(good) >= 30 and len(records) == len(dead) + len(good)
        settings = fh.fault_settings(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq,
                                     fetch_timeout_s=1.0, fetch_retries=FETCH_RETRIES,
                                     fetch_max_bytes=FETCH_CAP_BYTES, fetch_concurrency=8, max_batch_size=16)
        fleet = fh.Fleet(settings, tmp_path)
        member = fleet.start("hostile")
        try:
            fleet.wait_up(member)
            h.produce(kafka_bootstrap, topic, records)
            letters = h.read_topic(kafka_bootstrap, dlq, len(dead), timeout=120)
            got = h.wait_rows(database_url, db_schema, len(good), timeout=60)
            # Still alive and still serving: a good image sent afterwards is classified.
            h.produce(kafka_bootstrap, topic, [h.inline("after-the-storm", h.jpeg(12))])
            h.wait_for(lambda: any(r["image_id"] == "after-the-storm" for r in h.rows(database_url, db_schema)),
                       60, what="the sentinel row")
            assert member.alive(), fh.tail(member.log)
            peak = fh.peak_rss_bytes(member.proc.pid)
            metrics = member.metrics()
            assert fleet.stop("hostile") == 0
        finally:
            fleet.stop_all()
        hits = dict(store.hits)
    log = member.log.read_text(errors="replace")

    # Every bad case dead-lettered exactly once, with its stage and reason, produced unchanged.
    by_key: dict[str, list] = {}
    for msg in letters:
        by_key.setdefault((msg.key() or b"").decode("utf-8", "replace"), []).append(msg)
    assert set(by_key) == set(dead), (set(dead) - set(by_key), set(by_key) - set(dead))
    problems = []
    for key, (stage, reason, want_hits) in dead.items():
        (msg,) = by_key[key]
        headers = dict(msg.headers())
        have = (headers[H_STAGE].decode(), headers[H_REASON].decode())
        if have != (stage, reason):
            problems.append(f"{key}: {have} != {(stage, reason)}: {headers[H_MESSAGE].decode()[:120]}")
        assert headers[H_TOPIC] == topic.encode() and int(headers[H_OFFSET]) >= 0
        original = next(r for r in records if (r[0] or b"").decode("utf-8", "replace") == key)
        assert msg.value() == original[1], key
        if want_hits is not None:
            path = paths[key]
            if hits.get(path, 0) != want_hits:
                problems.append(f"{key}: object store hit {hits.get(path, 0)} times, expected {want_hits}")
            if want_hits > 1 and reason != "too_many_redirects":
                assert headers[H_ATTEMPTS] == str(want_hits).encode(), (key, headers[H_ATTEMPTS])
    assert not problems, "\n".join(problems)
    # The 100 MB bodies: reading stopped at the cap and the connection was dropped.
    assert sent.get("/huge-declared.jpg", 0) < HUGE_BYTES, sent
    assert sent.get("/huge-chunked.jpg", HUGE_BYTES) < HUGE_BYTES, sent
    assert hits["/flaky.png"] == 2  # one 503, then success: retried, not dead-lettered

    # The odd-but-valid images got rows with the offline scores.
    row_by_id = {r["image_id"]: r for r in got}
    for key, data in good.items():
        want = h.expected_scores(data, model)
        have = np.array([row_by_id[key]["scores"][label] for label in fh.LABELS])
        np.testing.assert_allclose(have, want, rtol=0, atol=fh.SCORE_ATOL, err_msg=key)
    assert len(h.rows(database_url, db_schema)) == len(good) + 1

    assert "unexpected error" not in log and "Traceback" not in log, fh.tail(member.log, 80)
    assert peak < MEMORY_CAP_BYTES, peak
    reasons = fh.dead_letters_by_reason(letters)
    assert h.metric_value(metrics, "clazzify_dead_letters_total") == len(dead)
    fh.write_figures("hostile", {
        "cases": len(records), "dead_lettered": len(dead), "classified": len(good),
        "dead_letters_by_reason": reasons, "peak_rss_mib": round(peak / 2**20, 1),
        "memory_cap_mib": MEMORY_CAP_BYTES // 2**20, "fetch_cap_mib": FETCH_CAP_BYTES // 2**20,
        "huge_body_sent_mib": {k: round(v / 2**20, 1) for k, v in sent.items()},
        "object_store_hits": {k: hits.get(v, 0) for k, v in paths.items()},
        "seconds": round(time.monotonic() - started, 1)})
