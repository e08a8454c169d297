"""Fixtures for every test: the real Kafka broker and PostgreSQL (never mocks).

Endpoints come from the environment when set (`make test` runs `python -m localservices up`
and exports CLAZZIFY_KAFKA_BOOTSTRAP / CLAZZIFY_DATABASE_URL / CLAZZIFY_SERVICES_DIR);
otherwise the session starts private instances in a temporary folder and removes them at
the end. Each service is resolved on its own, so one can come from the environment and the
other be private.

Fixtures:
    services           session  Services(kafka_bootstrap, database_url, kafka, postgres)
    kafka_bootstrap    session  "127.0.0.1:<port>"
    database_url       session  "postgresql://clazzify@127.0.0.1:<port>/clazzify"
    kafka_control      function KafkaBroker (stop/start/restart/kill/pause/resume); skips if
                                the broker is not ours to control; restarted after the test
    pg_control         function Postgres (stop/start/restart/kill); same rules
    kafka_admin        session  confluent_kafka.admin.AdminClient
    new_topic          function new_topic(partitions=4, *, config=None, prefix="test") -> name
    db_schema          function "t_<uuid hex>", a fresh schema dropped (CASCADE) afterwards
    db_schema_url      function database_url whose search_path is db_schema

confluent_kafka and psycopg2 are imported inside fixtures, so unit tests run without them.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localservices import KafkaBroker, LocalServices, NotConfiguredError, Postgres, default_workdir

TESTS_DIR = Path(__file__).resolve().parent
INTEGRATION_DIR = TESTS_DIR / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration carries the `integration` marker."""
    for item in items:
        if Path(str(item.path)).resolve().is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@dataclass
class Services:
    """Where the services are, and their controls (None when they are not ours to control)."""

    kafka_bootstrap: str
    database_url: str
    kafka: KafkaBroker | None
    postgres: Postgres | None


def _attach(service: KafkaBroker | Postgres, endpoint: str) -> KafkaBroker | Postgres | None:
    """The control for a service started by `python -m localservices up`, if it serves `endpoint`."""
    try:
        same = service.bootstrap == endpoint if isinstance(service, KafkaBroker) else service.url == endpoint
    except NotConfiguredError:
        return None
    return service if same else None


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    bootstrap = os.environ.get("CLAZZIFY_KAFKA_BOOTSTRAP")
    url = os.environ.get("CLAZZIFY_DATABASE_URL")
    shared = LocalServices(os.environ.get("CLAZZIFY_SERVICES_DIR") or default_workdir())
    private: LocalServices | None = None
    tmp: str | None = None
    try:
        if not (bootstrap and url):
            tmp = tempfile.mkdtemp(prefix="clazzify-services-")
            os.chmod(tmp, 0o755)  # PostgreSQL runs as an unprivileged user when we are root
            # Reuse the repository's jar cache: the jars are the same for every instance.
            private = LocalServices(tmp, lib_dir=default_workdir() / "kafka-lib")
        kafka: KafkaBroker | None
        postgres: Postgres | None
        if private is not None and not bootstrap and not url:
            private.up(quiet=True)  # both at once: Kafka boots while PostgreSQL starts
        if bootstrap:
            kafka = _attach(shared.kafka, bootstrap)
        else:
            assert private is not None
            kafka = private.kafka.start()
            bootstrap = kafka.bootstrap
        if url:
            postgres = _attach(shared.postgres, url)
        else:
            assert private is not None
            postgres = private.postgres.start()
            url = postgres.url
        yield Services(bootstrap, url, kafka, postgres)
    finally:
        try:
            if private is not None:
                private.down(purge=True)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(services: Services) -> str:
    return services.kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(services: Services) -> str:
    return services.database_url


def _ensure_kafka(services: Services) -> None:
    """Bring back a broker that a fault test left stopped or paused."""
    if services.kafka is not None:
        if services.kafka.is_running():
            services.kafka.resume()
        services.kafka.start()


def _ensure_postgres(services: Services) -> None:
    """Bring back a PostgreSQL that a fault test left stopped."""
    if services.postgres is not None:
        services.postgres.start()


@pytest.fixture
def kafka_control(services: Services) -> Iterator[KafkaBroker]:
    """The broker's controls, for fault tests; the broker runs again after the test."""
    if services.kafka is None:
        pytest.skip("the Kafka broker comes from the environment and is not ours to stop")
    yield services.kafka
    _ensure_kafka(services)


@pytest.fixture
def pg_control(services: Services) -> Iterator[Postgres]:
    """PostgreSQL's controls, for fault tests; the server runs again after the test."""
    if services.postgres is None:
        pytest.skip("PostgreSQL comes from the environment and is not ours to stop")
    yield services.postgres
    _ensure_postgres(services)


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": kafka_bootstrap})


def _wait_topic_visible(admin, name: str, partitions: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            meta = admin.list_topics(topic=name, timeout=5).topics.get(name)
        except Exception:  # KafkaException while the broker is busy: retry
            meta = None
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in meta.partitions.values())
        ):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {name} not visible with {partitions} partitions after {timeout:.0f} s")
        time.sleep(0.1)


@pytest.fixture
def new_topic(kafka_admin, services: Services) -> Iterator[Callable[..., str]]:
    """Factory: `new_topic(partitions=4, *, config=None, prefix="test")` creates `test-<uuid>`,
    waits until its metadata shows every partition with a leader, and deletes it afterwards."""
    from confluent_kafka.admin import NewTopic

    created: list[str] = []

    def make(partitions: int = 4, *, config: dict[str, str] | None = None, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4()}"
        futures = kafka_admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))],
            operation_timeout=30,
        )
        futures[name].result(timeout=60)
        created.append(name)
        _wait_topic_visible(kafka_admin, name, partitions)
        return name

    yield make
    if created:
        _ensure_kafka(services)
        for name, future in kafka_admin.delete_topics(created, operation_timeout=30).items():
            try:
                future.result(timeout=60)
            except Exception as exc:  # never fail a test over cleanup
                warnings.warn(f"could not delete topic {name}: {exc}")


def _connect(database_url: str, timeout: float = 60.0):
    """A psycopg2 connection, retried while the server is (re)starting."""
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg2.connect(database_url, connect_timeout=5)
        except psycopg2.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def db_schema(database_url: str, services: Services) -> Iterator[str]:
    """A fresh schema `t_<uuid hex>`, dropped with everything in it after the test."""
    from psycopg2 import sql

    name = f"t_{uuid.uuid4().hex}"
    conn = _connect(database_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    yield name
    _ensure_postgres(services)
    conn = _connect(database_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    finally:
        conn.close()


@pytest.fixture
def db_schema_url(database_url: str, db_schema: str) -> str:
    """`database_url` with `options=-csearch_path=<db_schema>`: unqualified names land in the schema."""
    parts = urllib.parse.urlsplit(database_url)
    query = urllib.parse.parse_qsl(parts.query)
    query.append(("options", f"-csearch_path={db_schema}"))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
