"""The consumer's errors, and THE decision: transient (retry) or permanent (dead-letter).

Every failure of one image ends as one of two classes:

* :class:`PermanentError` — the input can never succeed (not an image, corrupt,
  too large, a decompression bomb, a forbidden URL, a 404). The record is
  produced unchanged to the dead-letter topic with ``stage`` and ``reason``
  headers, then counted as done.
* :class:`TransientError` — the world is briefly broken (database down, object
  store 503, timeout, broker away). Retried with backoff while the partition is
  paused; never dead-lettered, except a fetch that stays transient after
  ``fetch_retries`` tries, which is dead-lettered with its last reason so one
  dead URL cannot block a partition forever.

``reason`` is a short stable code (it becomes a metric label and a header).
"""

from __future__ import annotations


class ClazzifyError(Exception):
    """Root of the consumer's errors."""

    def __init__(self, stage: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{stage}/{reason}: {detail}" if detail else f"{stage}/{reason}")
        self.stage = stage
        self.reason = reason
        self.detail = detail


class PermanentError(ClazzifyError):
    """This input can never succeed: dead-letter it."""


class TransientError(ClazzifyError):
    """Retry later with backoff; the input itself may be fine."""


class FatalError(ClazzifyError):
    """The service cannot run at all (bad model file, bad configuration): exit non-zero."""


# Stage names: the `stage` label of metrics and the dead-letter header.
STAGE_PARSE = "parse"
STAGE_FETCH = "fetch"
STAGE_DECODE = "decode"
STAGE_INFERENCE = "inference"
STAGE_STORE = "store"
STAGE_DEADLETTER = "deadletter"
STAGE_COMMIT = "commit"
