"""PostgreSQL: the schema, its migration, and the idempotent batch upsert (contract 3).

One row per (image_id, model_version). A replay of the same record changes
nothing; a *newer* record for the same image (higher offset in its partition,
or a later upload) replaces the row; an older or equal one (a zombie replica's
late result, a redelivery) never overwrites it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import execute_values

from consumer.errors import STAGE_STORE, FatalError, TransientError

logger = logging.getLogger(__name__)

TABLE = "image_classifications"
SCHEMA_VERSION = 1

# Each step runs once, in order, recorded in clazzify_schema_version. Steps are
# written to be idempotent as well, so a half-applied step can simply rerun.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS {schema}.image_classifications (
        image_id          text             NOT NULL,
        model_version     text             NOT NULL,
        label             text             NOT NULL,
        score             double precision NOT NULL,
        scores            jsonb            NOT NULL,
        source_topic      text             NOT NULL,
        source_partition  integer          NOT NULL,
        source_offset     bigint           NOT NULL,
        uploaded_at       timestamptz,
        classified_at     timestamptz      NOT NULL DEFAULT now(),
        PRIMARY KEY (image_id, model_version)
    );
    CREATE INDEX IF NOT EXISTS image_classifications_label_idx
        ON {schema}.image_classifications (model_version, label, score DESC);
    CREATE INDEX IF NOT EXISTS image_classifications_classified_at_idx
        ON {schema}.image_classifications (classified_at);
    """,
}

_UPSERT = """
INSERT INTO {table} AS t
    (image_id, model_version, label, score, scores, source_topic, source_partition,
     source_offset, uploaded_at, classified_at)
VALUES %s
ON CONFLICT (image_id, model_version) DO UPDATE SET
    label = EXCLUDED.label, score = EXCLUDED.score, scores = EXCLUDED.scores,
    source_topic = EXCLUDED.source_topic, source_partition = EXCLUDED.source_partition,
    source_offset = EXCLUDED.source_offset, uploaded_at = EXCLUDED.uploaded_at,
    classified_at = EXCLUDED.classified_at
WHERE (EXCLUDED.source_topic = t.source_topic AND EXCLUDED.source_partition = t.source_partition
       AND EXCLUDED.source_offset > t.source_offset)
   OR ((EXCLUDED.source_topic <> t.source_topic OR EXCLUDED.source_partition <> t.source_partition)
       AND EXCLUDED.uploaded_at > t.uploaded_at)
"""


@dataclass(frozen=True)
class Row:
    """One classification result (contract 3)."""

    image_id: str
    model_version: str
    label: str
    score: float
    scores: dict[str, float]
    source_topic: str
    source_partition: int
    source_offset: int
    uploaded_at: datetime | None
    classified_at: datetime


def _transient(exc: Exception) -> bool:
    """Connection-level trouble (server gone, network, restart) is transient."""
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return True
    return isinstance(exc, (psycopg2.errors.SerializationFailure, psycopg2.errors.DeadlockDetected,
                            psycopg2.errors.AdminShutdown, psycopg2.errors.CannotConnectNow))


class Store:
    """A single connection, opened lazily and re-opened after a transient failure."""

    def __init__(self, url: str, schema: str = "public", connect_timeout_s: int = 5,
                 auto_migrate: bool = False) -> None:
        self._url = url
        self.auto_migrate = auto_migrate
        self.schema = schema
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg2.extensions.connection | None = None

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(
                    self._url, connect_timeout=self._connect_timeout_s, application_name="clazzify",
                    keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)
            except psycopg2.Error as exc:
                raise TransientError(STAGE_STORE, "db_unavailable", _describe(exc)) from exc
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def _run(self, fn):  # type: ignore[no-untyped-def]
        conn = self._connection()
        try:
            with conn:  # one transaction: commit on success, rollback on error
                with conn.cursor() as cur:
                    return fn(cur)
        except psycopg2.Error as exc:
            if _transient(exc):
                self.close()
                raise TransientError(STAGE_STORE, "db_unavailable", _describe(exc)) from exc
            raise FatalError(STAGE_STORE, "db_error", _describe(exc)) from exc

    def ping(self) -> None:
        self._run(lambda cur: cur.execute("SELECT 1"))

    def migrate(self) -> int:
        """Create or upgrade the schema; safe to run concurrently and repeatedly. Returns the version."""
        schema = sql.Identifier(self.schema)

        def apply(cur) -> int:  # type: ignore[no-untyped-def]
            # One migrator at a time across all replicas and Jobs.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('clazzify.migrate'))")
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.clazzify_schema_version "
                                "(version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
                        .format(schema))
            cur.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}.clazzify_schema_version").format(schema))
            current = cur.fetchone()[0]
            for version in sorted(v for v in MIGRATIONS if v > current):
                cur.execute(sql.SQL(MIGRATIONS[version]).format(schema=schema))
                cur.execute(sql.SQL("INSERT INTO {}.clazzify_schema_version (version) VALUES (%s)").format(schema),
                            (version,))
                logger.info("applied migration version=%d schema=%s", version, self.schema)
            return max(current, SCHEMA_VERSION)

        return self._run(apply)

    def upsert(self, rows: list[Row]) -> int:
        """Write all rows in one transaction; returns how many rows were inserted or changed."""
        if not rows:
            return 0
        # ON CONFLICT cannot touch one row twice in a statement: keep the newest per key.
        newest: dict[tuple[str, str], Row] = {}
        for row in rows:
            key = (row.image_id, row.model_version)
            if key not in newest or row.source_offset > newest[key].source_offset:
                newest[key] = row
        values = [(r.image_id, r.model_version, r.label, r.score, json.dumps(r.scores), r.source_topic,
                   r.source_partition, r.source_offset, r.uploaded_at, r.classified_at)
                  for r in newest.values()]
        statement = sql.SQL(_UPSERT).format(table=sql.Identifier(self.schema, TABLE))

        def write(cur) -> int:  # type: ignore[no-untyped-def]
            execute_values(cur, statement.as_string(cur), values, page_size=max(len(values), 1))
            return cur.rowcount

        try:
            return self._run(write)
        except FatalError as exc:
            if not (self.auto_migrate and isinstance(exc.__cause__, psycopg2.errors.UndefinedTable)):
                raise
            logger.warning("table missing in schema %s: migrating", self.schema)
            self.migrate()
            return self._run(write)


def _describe(exc: Exception) -> str:
    """A one-line error without connection parameters (which could hold a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
