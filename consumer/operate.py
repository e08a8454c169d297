"""Operator commands: ``replay`` (reset the group's offsets to a time) and ``redrive`` (dead letters back in).

Both talk only to Kafka; see docs/runbook.md for when to use them.

replay
    Moves the consumer group's committed offsets back (or forward) to the first
    record at or after a timestamp, on every partition of the input topic. The
    group must be empty — stop the consumers first (scale the Deployment to 0):
    Kafka refuses offset changes for a group with live members, and so do we,
    before asking. Replayed records are harmless: the upsert keeps one row per
    (image, model version) and never lets an older record overwrite a newer one.

redrive
    Re-publishes dead letters to the input topic — the original key, value and
    headers, without the ``clazzify.error.*``/``clazzify.source.*`` headers and
    with ``clazzify.redrive.count`` incremented — optionally only those whose
    ``clazzify.error.reason`` matches. Progress is kept in the consumer group
    ``<group>.redrive.<reasons>``, so running it again redrives only newer dead
    letters. A record redriven ``MAX_REDRIVES`` times is left alone (a poison
    input does not loop forever). Stops at the dead-letter topic's end as it was
    when the command started, or after ``--idle-timeout`` seconds without records.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from consumer.deadletter import H_REASON, OUR_HEADERS
from consumer.events import parse_timestamp
from consumer.settings import Settings

logger = logging.getLogger(__name__)

H_REDRIVE_COUNT = "clazzify.redrive.count"
MAX_REDRIVES = 3


def _timestamp_ms(text: str) -> int:
    if text.strip().isdigit():
        return int(text.strip())
    parsed = parse_timestamp(text.strip())
    if parsed is None:
        raise SystemExit(f"cannot parse time {text!r}: use ISO-8601 (2026-12-01T00:00:00Z) or epoch ms")
    return int(parsed.timestamp() * 1000)


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise SystemExit(f"topic {topic} not found")
    return sorted(meta.partitions)


def group_members(admin: AdminClient, group: str) -> int:
    """Live members of ``group`` (0 when it is empty or unknown)."""
    future = admin.describe_consumer_groups([group], request_timeout=10)[group]
    try:
        return len(future.result().members)
    except KafkaException:
        return 0


def replay(settings: Settings, from_time: str, dry_run: bool = False) -> int:
    """Reset ``settings.group_id``'s offsets on the input topic to ``from_time``. Returns an exit code."""
    common = settings.kafka_common_config()
    admin = AdminClient(common)
    members = group_members(admin, settings.group_id)
    if members:
        print(f"refusing: group {settings.group_id} has {members} live member(s); stop the consumers first "
              "(kubectl scale deployment/clazzify-consumer --replicas=0)")
        return 3
    ts = _timestamp_ms(from_time)
    consumer = Consumer({**common, "group.id": settings.group_id, "enable.auto.commit": False})
    try:
        parts = _partitions(consumer, settings.input_topic)
        found = consumer.offsets_for_times([TopicPartition(settings.input_topic, p, ts) for p in parts], timeout=15)
        targets = []
        for tp in found:
            offset = tp.offset
            if offset < 0:  # no record at or after the time: the end of the partition
                offset = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
            targets.append(TopicPartition(tp.topic, tp.partition, offset))
        when = datetime.fromtimestamp(ts / 1000, tz=timezone.utc).isoformat()
        for tp in targets:
            print(f"{tp.topic}[{tp.partition}] -> offset {tp.offset}  (first record at/after {when})")
        if dry_run:
            print("dry run: nothing changed")
            return 0
        result = consumer.commit(offsets=targets, asynchronous=False)
        failed = [tp for tp in result or [] if tp.error is not None]
        if failed:
            for tp in failed:
                print(f"failed {tp.topic}[{tp.partition}]: {tp.error}")
            return 1
        print(f"group {settings.group_id} reset on {len(targets)} partition(s)")
        return 0
    finally:
        consumer.close()


def redrive(settings: Settings, reasons: list[str] | None = None, limit: int = 0, dry_run: bool = False,
            idle_timeout_s: float = 5.0) -> int:
    """Re-publish dead letters (optionally only ``reasons``) to the input topic. Returns an exit code."""
    common = settings.kafka_common_config()
    wanted = {r.strip() for r in reasons or [] if r.strip()}
    group = f"{settings.group_id}.redrive.{'+'.join(sorted(wanted)) or 'all'}"
    consumer = Consumer({**common, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    producer = Producer({**common, "enable.idempotence": True, "acks": "all"})
    parts = _partitions(consumer, settings.dlq_topic)
    end = {p: consumer.get_watermark_offsets(TopicPartition(settings.dlq_topic, p), timeout=10)[1] for p in parts}
    consumer.subscribe([settings.dlq_topic])
    done: set[int] = {p for p, high in end.items() if high == 0}
    counts = {"redriven": 0, "skipped_reason": 0, "skipped_max": 0}
    last_record = time.monotonic()
    try:
        while len(done) < len(parts) and time.monotonic() - last_record < idle_timeout_s:
            if limit and counts["redriven"] >= limit:
                break
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                continue  # partition EOF and transient errors: keep going until the end snapshot
            last_record = time.monotonic()
            if msg.offset() + 1 >= end.get(msg.partition(), 0):
                done.add(msg.partition())
            headers = list(msg.headers() or [])
            reason = dict(headers).get(H_REASON, b"").decode("utf-8", "replace")
            count = int(dict(headers).get(H_REDRIVE_COUNT, b"0") or 0)
            if wanted and reason not in wanted:
                counts["skipped_reason"] += 1
            elif count >= MAX_REDRIVES:
                counts["skipped_max"] += 1
            else:
                counts["redriven"] += 1
                if not dry_run:
                    kept = [(k, v) for k, v in headers if k not in OUR_HEADERS and k != H_REDRIVE_COUNT]
                    producer.produce(settings.input_topic, key=msg.key(), value=msg.value(),
                                     headers=kept + [(H_REDRIVE_COUNT, str(count + 1).encode())])
            if not dry_run:
                if producer.flush(30):
                    print("producer could not deliver; stopping without committing")
                    return 1
                consumer.commit(message=msg, asynchronous=False)
    finally:
        producer.flush(30)
        consumer.close()
    verb = "would redrive" if dry_run else "redrove"
    print(f"{verb} {counts['redriven']} dead letter(s) to {settings.input_topic}; skipped "
          f"{counts['skipped_reason']} (other reasons), {counts['skipped_max']} (redriven {MAX_REDRIVES}x already)")
    return 0
