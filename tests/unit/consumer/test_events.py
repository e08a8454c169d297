import json

import pytest

from consumer.errors import PermanentError
from consumer.events import parse_event

CAP = 1000


def test_claim_check_event_keeps_unknown_fields():
    value = json.dumps({"image_id": "img-1", "url": "https://cdn.example.com/a.jpg",
                        "uploaded_at": "2026-12-01T10:00:00Z", "restaurant_id": 42}).encode()
    ev = parse_event(b"img-1", value, [], max_image_bytes=CAP)
    assert ev.image_id == "img-1" and ev.url == "https://cdn.example.com/a.jpg"
    assert ev.uploaded_at.isoformat() == "2026-12-01T10:00:00+00:00"
    assert ev.extra == {"restaurant_id": 42}


def test_inline_bytes_event_uses_key_as_id():
    ev = parse_event(b"img-2", b"\xff\xd8jpeg", [("content-type", b"image/jpeg")], max_image_bytes=CAP)
    assert ev.image_id == "img-2" and ev.data == b"\xff\xd8jpeg" and ev.url is None


def test_epoch_milliseconds_timestamp():
    ev = parse_event(None, json.dumps({"image_id": 7, "url": "http://x/y", "uploaded_at": 1764583200000}).encode(),
                     None, max_image_bytes=CAP)
    assert ev.image_id == "7" and ev.uploaded_at.year == 2025


@pytest.mark.parametrize("key,value,headers,reason", [
    (None, b"{not json", [], "invalid_json"),
    (None, b"", [], "invalid_json"),
    (None, b"[1,2]", [], "invalid_json"),
    (None, json.dumps({"url": "http://x"}).encode(), [], "missing_image_id"),
    (None, json.dumps({"image_id": "", "url": "http://x"}).encode(), [], "missing_image_id"),
    (None, json.dumps({"image_id": "a"}).encode(), [], "missing_url"),
    (None, json.dumps({"image_id": "a\x00b", "url": "http://x"}).encode(), [], "invalid_image_id"),
    (None, json.dumps({"image_id": "a", "url": "http://x", "pad": "x" * 70000}).encode(), [], "event_too_large"),
    (None, b"\xff\xd8", [("content-type", b"image/jpeg")], "missing_image_id"),
    (b"k", b"", [("content-type", b"image/png")], "empty"),
    (b"k", b"x" * (CAP + 1), [("content-type", b"image/png")], "too_large"),
])
def test_bad_events_are_permanent_with_reason(key, value, headers, reason):
    with pytest.raises(PermanentError) as info:
        parse_event(key, value, headers, max_image_bytes=CAP)
    assert info.value.reason == reason and info.value.stage == "parse"
