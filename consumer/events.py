"""Parse one Kafka record into an :class:`Event` (DESIGN.md, contract 1).

Two forms are accepted:

* **claim-check** — value is JSON ``{"image_id": ..., "url": ..., "uploaded_at": ...}``;
  unknown fields are kept in :attr:`Event.extra`, never rejected;
* **inline bytes** — a ``content-type: image/...`` header, the value is the
  image itself and the key is the image id.

Anything else is a :class:`~consumer.errors.PermanentError` of stage ``parse``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from consumer.errors import STAGE_PARSE, PermanentError

MAX_IMAGE_ID_CHARS = 512
MAX_EVENT_JSON_BYTES = 64 * 1024  # a claim-check event is a few hundred bytes
Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Event:
    """One upload: its id, and either a URL to fetch or the bytes themselves."""

    image_id: str
    url: str | None = None
    data: bytes | None = None
    uploaded_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def header(headers: Headers | None, name: str) -> bytes | None:
    """The last value of header ``name`` (case-insensitive), or None."""
    found = None
    for key, value in headers or ():
        if key.lower() == name:
            found = value
    return found


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 string or epoch seconds/milliseconds → aware UTC datetime; None if absent/unparseable."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            seconds = value / 1000.0 if value > 1e11 else float(value)
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _image_id(raw: Any) -> str:
    if isinstance(raw, bool) or raw is None:
        raise PermanentError(STAGE_PARSE, "missing_image_id", "event has no image_id")
    if isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise PermanentError(STAGE_PARSE, "missing_image_id", "image_id must be a non-empty string")
    if "\x00" in raw:  # PostgreSQL text cannot hold NUL
        raise PermanentError(STAGE_PARSE, "invalid_image_id", "image_id contains a NUL character")
    if len(raw) > MAX_IMAGE_ID_CHARS:
        raise PermanentError(STAGE_PARSE, "invalid_image_id", f"image_id longer than {MAX_IMAGE_ID_CHARS} chars")
    return raw


def parse_event(key: bytes | None, value: bytes | None, headers: Headers | None, *,
                max_image_bytes: int) -> Event:
    """Turn a record's key, value and headers into an :class:`Event`, or raise PermanentError."""
    content_type = (header(headers, "content-type") or b"").decode("latin-1").strip().lower()
    if content_type.startswith("image/"):
        if not key:
            raise PermanentError(STAGE_PARSE, "missing_image_id", "inline image without a key")
        try:
            image_id = _image_id(key.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise PermanentError(STAGE_PARSE, "invalid_image_id", "key is not UTF-8") from exc
        if not value:
            raise PermanentError(STAGE_PARSE, "empty", "inline image has no bytes")
        if len(value) > max_image_bytes:
            raise PermanentError(STAGE_PARSE, "too_large", f"{len(value)} bytes > cap {max_image_bytes}")
        uploaded = header(headers, "uploaded-at")
        return Event(image_id=image_id, data=value,
                     uploaded_at=parse_timestamp(uploaded.decode("utf-8", "replace")) if uploaded else None)

    if not value:
        raise PermanentError(STAGE_PARSE, "invalid_json", "empty value and no image content-type")
    if len(value) > MAX_EVENT_JSON_BYTES:
        raise PermanentError(STAGE_PARSE, "event_too_large",
                             f"JSON event of {len(value)} bytes > {MAX_EVENT_JSON_BYTES}")
    try:
        doc = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PermanentError(STAGE_PARSE, "invalid_json", str(exc)[:200]) from exc
    if not isinstance(doc, dict):
        raise PermanentError(STAGE_PARSE, "invalid_json", "event is not a JSON object")
    image_id = _image_id(doc.get("image_id"))
    url = doc.get("url")
    if not isinstance(url, str) or not url.strip():
        raise PermanentError(STAGE_PARSE, "missing_url", "claim-check event has no url")
    extra = {k: v for k, v in doc.items() if k not in ("image_id", "url", "uploaded_at")}
    return Event(image_id=image_id, url=url.strip(), uploaded_at=parse_timestamp(doc.get("uploaded_at")),
                 extra=extra)
