"""The dead-letter topic (contract 4): the record unchanged, plus why it failed and where from.

Headers (all UTF-8 strings), after the record's own headers:

=============================  ==============================================
``clazzify.error.stage``       parse | fetch | decode | inference
``clazzify.error.reason``      stable code, e.g. ``corrupt_image``, ``http_404``
``clazzify.error.message``     human-readable detail (no secrets, no bytes)
``clazzify.source.topic``      topic the record came from
``clazzify.source.partition``  its partition
``clazzify.source.offset``     its offset
``clazzify.source.timestamp``  its Kafka timestamp, ms since the epoch
``clazzify.failed_at``         ISO-8601 UTC time of the decision
``clazzify.attempts``          how many tries were made
``clazzify.consumer``          host name of the replica that decided
=============================  ==============================================

A dead letter counts as done only once the broker acknowledged it (acks=all,
idempotent producer); a failed delivery is a transient error and is retried.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from confluent_kafka import KafkaError, Producer

from consumer.errors import STAGE_DEADLETTER, TransientError

H_STAGE = "clazzify.error.stage"
H_REASON = "clazzify.error.reason"
H_MESSAGE = "clazzify.error.message"
H_TOPIC = "clazzify.source.topic"
H_PARTITION = "clazzify.source.partition"
H_OFFSET = "clazzify.source.offset"
H_TIMESTAMP = "clazzify.source.timestamp"
H_FAILED_AT = "clazzify.failed_at"
H_ATTEMPTS = "clazzify.attempts"
H_CONSUMER = "clazzify.consumer"
OUR_HEADERS = (H_STAGE, H_REASON, H_MESSAGE, H_TOPIC, H_PARTITION, H_OFFSET, H_TIMESTAMP,
               H_FAILED_AT, H_ATTEMPTS, H_CONSUMER)


@dataclass(frozen=True)
class DeadLetter:
    """A record to dead-letter and why."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    stage: str
    reason: str
    message: str
    attempts: int = 1


def dead_letter_headers(letter: DeadLetter, now: datetime | None = None) -> list[tuple[str, bytes]]:
    now = now or datetime.now(timezone.utc)
    ours = {
        H_STAGE: letter.stage, H_REASON: letter.reason, H_MESSAGE: letter.message[:1000],
        H_TOPIC: letter.topic, H_PARTITION: str(letter.partition), H_OFFSET: str(letter.offset),
        H_TIMESTAMP: str(letter.timestamp_ms), H_FAILED_AT: now.isoformat(),
        H_ATTEMPTS: str(letter.attempts), H_CONSUMER: socket.gethostname(),
    }
    # The record's own headers first (minus any of ours from an earlier trip), then ours.
    kept = [(k, v if v is not None else b"") for k, v in letter.headers if k not in ours]
    return kept + [(k, v.encode("utf-8")) for k, v in ours.items()]


class DeadLetterProducer:
    """Produces dead letters and waits for the broker's acknowledgement."""

    def __init__(self, config: dict[str, Any], topic: str, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self._timeout_s = timeout_s
        self._producer = Producer({
            **config,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.max.bytes": 64 * 1024 * 1024,
            "message.timeout.ms": int(timeout_s * 1000),
        })

    def send(self, letters: list[DeadLetter]) -> None:
        """Produce all, flush, and raise TransientError unless every one was acknowledged."""
        if not letters:
            return
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for letter in letters:
            while True:
                try:
                    self._producer.produce(self.topic, key=letter.key, value=letter.value,
                                           headers=dead_letter_headers(letter), on_delivery=on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.1)  # local queue full: let deliveries drain
        remaining = self._producer.flush(self._timeout_s)
        if remaining or errors:
            raise TransientError(STAGE_DEADLETTER, "dlq_unavailable",
                                 f"{len(errors)} failed, {remaining} unacknowledged: {errors[:3]}")

    def close(self) -> None:
        self._producer.flush(self._timeout_s)
