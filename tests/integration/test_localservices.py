"""The local services are real and behave like the ones in production: Kafka and PostgreSQL."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from contextlib import closing

import pytest

from localservices.stack import REPO_ROOT


def _produce(bootstrap: str, topic: str, records: list[tuple[int, bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors: list = []
    for partition, key, value in records:
        producer.produce(
            topic, key=key, value=value, partition=partition,
            headers=[("content-type", b"application/json")],
            on_delivery=lambda err, msg: errors.append(err) if err else None,
        )
    assert producer.flush(30) == 0
    assert errors == []


def _consume(consumer, count: int, timeout: float = 60.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg)
    return got


def test_produce_and_consume_through_a_group(kafka_bootstrap, new_topic):
    from confluent_kafka import Consumer

    topic = new_topic()  # 4 partitions
    records = [(p, f"image-{p}".encode(), f'{{"image_id": "image-{p}"}}'.encode()) for p in range(4)]
    _produce(kafka_bootstrap, topic, records)

    consumer = Consumer({
        "bootstrap.servers": kafka_bootstrap,
        "group.id": f"test-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    try:
        consumer.subscribe([topic])
        got = _consume(consumer, 4)
        assert sorted((m.partition(), m.key(), m.value()) for m in got) == records
        assert all(m.headers() == [("content-type", b"application/json")] for m in got)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def test_row_round_trips_in_a_fresh_schema(db_schema, db_schema_url):
    import psycopg2

    with closing(psycopg2.connect(db_schema_url)) as conn:
        with conn, conn.cursor() as cur:  # one transaction, committed on exit
            cur.execute("SHOW search_path")
            assert cur.fetchone()[0] == db_schema
            cur.execute("CREATE TABLE scores (image_id text PRIMARY KEY, score real, at timestamptz DEFAULT now())")
            cur.execute("INSERT INTO scores (image_id, score) VALUES (%s, %s)", ("img-1", 0.75))
    with closing(psycopg2.connect(db_schema_url)) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT image_id, score FROM "{db_schema}".scores')
        assert cur.fetchall() == [("img-1", 0.75)]
        cur.execute("SHOW timezone")
        assert cur.fetchone()[0] == "UTC"


def test_postgres_stop_refuses_connections_and_start_brings_it_back(pg_control, database_url):
    import psycopg2

    url_before = pg_control.url
    pg_control.stop()
    assert not pg_control.is_running()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(database_url, connect_timeout=3)
    pg_control.start()
    assert pg_control.url == url_before == database_url
    conn = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_broker_restart_keeps_topic_and_data(kafka_control, kafka_bootstrap, new_topic, kafka_admin):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = new_topic(4)
    records = [(p % 4, f"k{p}".encode(), f"v{p}".encode()) for p in range(20)]
    _produce(kafka_bootstrap, topic, records)

    started = time.monotonic()
    kafka_control.restart()
    restart_s = time.monotonic() - started
    assert kafka_control.bootstrap == kafka_bootstrap
    assert restart_s < 90

    meta = kafka_admin.list_topics(topic=topic, timeout=30).topics[topic]
    assert len(meta.partitions) == 4
    consumer = Consumer({
        "bootstrap.servers": kafka_bootstrap,
        "group.id": f"test-{uuid.uuid4()}",
        "enable.auto.commit": False,
    })
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])
        got = _consume(consumer, len(records))
    finally:
        consumer.close()
    assert sorted((m.partition(), m.key(), m.value()) for m in got) == sorted(records)


def test_cli_help_and_status():
    for command in ([], ["up"], ["down"], ["status"], ["env"]):
        done = subprocess.run(
            [sys.executable, "-m", "localservices", *command, "--help"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "usage:" in done.stdout
