"""Security against the real broker and database (issue 5, "Security").

* SQL is only ever parameterised: hostile image ids end as ordinary rows;
* secrets (database password, SASL password, classify token, presigned URL signatures) never
  reach the logs, even at DEBUG, nor ``--help``;
* Kafka SASL_SSL: the configuration path produces the right librdkafka keys, and a replica
  configured for SASL_SSL against a PLAINTEXT broker stays up, not ready, and leaks nothing;
* PostgreSQL TLS: a private server with a self-signed certificate, the consumer connected with
  ``sslmode=verify-full`` (checked in ``pg_stat_ssl``), and refused with the wrong root.

(The URL-fetching SSRF guard is exercised end to end in test_hostile.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import psycopg2
import pytest

from consumer.deadletter import OUR_HEADERS
from consumer.errors import TransientError
from consumer.settings import Settings
from consumer.store import Store
from tests.support import faults_harness as fh
from tests.support import harness as h
from tests.support.httpserver import ObjectStore

DB_PASSWORD = "pg-Pa55word-7f3c9e"
SASL_PASSWORD = "sasl-Pa55word-91ab2d"
CLASSIFY_TOKEN = "tok-5e5e5e-classify-secret"
URL_SIGNATURE = "X-Amz-Signature=deadbeefcafe0123456789"
SECRETS = (DB_PASSWORD, SASL_PASSWORD, CLASSIFY_TOKEN, URL_SIGNATURE, "deadbeefcafe0123456789")

HOSTILE_IDS = [
    "x'); DROP TABLE image_classifications;--",
    "Robert'); DROP TABLE students;--",
    "' OR '1'='1",
    "%s", "%(image_id)s", "{schema}", "$$; DROP SCHEMA public CASCADE; $$",
    "\\'; SELECT pg_sleep(30);--", "a\"b\"c", "semi;colon", "😀 ünïcödé", "line\nbreak",
]


@pytest.fixture
def model(tmp_path):
    return h.model_file(tmp_path)


def with_password(url: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    user = parts.username or "clazzify"
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# ------------------------------------------------------------------------------ SQL
def test_hostile_image_ids_are_stored_verbatim_by_parameterised_sql(
        kafka_bootstrap, database_url, db_schema, new_topic, model):
    topic, dlq = new_topic(2), new_topic(1, prefix="dlq")
    with ObjectStore("127.0.0.2") as store:
        url = store.put("/ok.jpg", h.jpeg(3, size=(64, 64)))
        records = [h.inline(i, h.jpeg(n, size=(64, 64))) for n, i in enumerate(HOSTILE_IDS)]
        # The claim-check path too, with hostile extra fields and a hostile uploaded_at.
        records.append(h.claim_check("cc'); DELETE FROM image_classifications;--", url,
                                     restaurant="'; DROP TABLE x;--"))
        records.append((b"ts-injection", json.dumps({"image_id": "ts-injection", "url": url,
                                                     "uploaded_at": "2026-01-01'); DROP TABLE t;--"}).encode(), []))
        h.produce(kafka_bootstrap, topic, records)
        settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model, dlq_topic=dlq)
        with h.running_app(settings):
            got = h.wait_rows(database_url, db_schema, len(records), timeout=60)
    want = set(HOSTILE_IDS) | {"cc'); DELETE FROM image_classifications;--", "ts-injection"}
    assert {r["image_id"] for r in got} == want and len(got) == len(want)
    assert next(r for r in got if r["image_id"] == "ts-injection")["uploaded_at"] is None
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'")
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT to_regclass(%s)", (f'"{db_schema}".image_classifications',))
            assert cur.fetchone()[0] is not None
    finally:
        conn.close()


# -------------------------------------------------------------------------- secrets
def test_secrets_never_logged_even_at_debug(kafka_bootstrap, database_url, db_schema, new_topic, model,
                                            tmp_path):
    topic, dlq = new_topic(2), new_topic(1, prefix="dlq")
    settings = fh.fault_settings(kafka_bootstrap, with_password(database_url, DB_PASSWORD), db_schema, topic,
                                 model, dlq_topic=dlq, log_level="DEBUG", log_format="json", fetch_retries=1,
                                 fetch_timeout_s=1.0)
    fleet = fh.Fleet(settings, tmp_path)
    with ObjectStore("127.0.0.2") as store:
        signed = f"?X-Amz-Credential=AKIAEXAMPLE&{URL_SIGNATURE}"
        records = [h.inline(f"sec-{i}", h.jpeg(i, size=(64, 64))) for i in range(3)]
        records.append(h.claim_check("sec-url", store.put("/ok.jpg", h.jpeg(9, size=(64, 64))) + signed))
        records.append(h.claim_check("sec-404", store.url("/missing.jpg") + signed))
        records.append(h.claim_check("sec-503", store.status("/e503.jpg", 503) + signed))
        records.append(h.claim_check("sec-timeout", store.hang("/hang.jpg", 3.0) + signed))
        member = fleet.start("secret", CLAZZIFY_KAFKA_SASL_PASSWORD=SASL_PASSWORD,
                             CLAZZIFY_CLASSIFY_TOKEN=CLASSIFY_TOKEN)
        try:
            fleet.wait_up(member)
            h.produce(kafka_bootstrap, topic, records)
            h.wait_rows(database_url, db_schema, 4, timeout=60)
            letters = h.read_topic(kafka_bootstrap, dlq, 3, timeout=60)
            # The classify endpoint: a wrong token is refused, the right one works; neither is logged.
            body = h.jpeg(4, size=(64, 64))
            for token, want in (("wrong-token", 401), (CLASSIFY_TOKEN, 200)):
                request = urllib.request.Request(f"http://127.0.0.1:{member.port}/v1/classify", data=body,
                                                 headers={"Content-Type": "image/jpeg",
                                                          "Authorization": f"Bearer {token}"})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status = response.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                assert status == want
            assert fleet.stop("secret") == 0
        finally:
            fleet.stop_all()
    log = member.log.read_text(errors="replace")
    assert '"level": "DEBUG"' in log  # DEBUG really was on
    assert "**********" in log  # the settings were logged, redacted
    for secret in SECRETS:
        assert secret not in log, f"secret {secret[:6]}… in the log"
    for msg in letters:  # dead-letter headers carry the reason, not the signature
        for key, value in msg.headers():
            if key in OUR_HEADERS:
                assert not any(s.encode() in value for s in SECRETS), (key, value)
    help_text = subprocess.run([sys.executable, "-m", "consumer", "run", "--help"], capture_output=True, text=True,
                               env={**h.env_for(settings), "CLAZZIFY_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
                                    "CLAZZIFY_CLASSIFY_TOKEN": CLASSIFY_TOKEN}, cwd=h.ROOT, timeout=60)
    assert help_text.returncode == 0 and "--database-url" in help_text.stdout
    for secret in SECRETS:
        assert secret not in help_text.stdout + help_text.stderr
    bad = subprocess.run([sys.executable, "-m", "consumer", "run", "--max-batch-size", "not-a-number"],
                         capture_output=True, text=True, cwd=h.ROOT, timeout=60,
                         env={**h.env_for(settings), "CLAZZIFY_KAFKA_SASL_PASSWORD": SASL_PASSWORD})
    assert bad.returncode == 2  # a validation error prints the bad field, never the secrets
    for secret in SECRETS:
        assert secret not in bad.stdout + bad.stderr
    fh.write_figures("secrets", {"log_lines_scanned": log.count("\n"), "debug_lines": log.count('"level": "DEBUG"'),
                                 "secrets_checked": len(SECRETS), "secrets_found": 0,
                                 "dead_letters_checked": len(letters)})


# ---------------------------------------------------------------------------- Kafka
def test_kafka_sasl_ssl_configuration_path(tmp_path):
    s = Settings(kafka_bootstrap="broker-1:9094,broker-2:9094", kafka_security_protocol="SASL_SSL",
                 kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="clazzify",
                 kafka_sasl_password=SASL_PASSWORD, kafka_ssl_ca_location="/etc/kafka/ca.pem")
    assert s.kafka_common_config() == {
        "bootstrap.servers": "broker-1:9094,broker-2:9094", "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "clazzify", "sasl.password": SASL_PASSWORD,
        "ssl.ca.location": "/etc/kafka/ca.pem"}
    assert SASL_PASSWORD not in repr(s) and SASL_PASSWORD not in str(s.redacted())
    plain = Settings(kafka_bootstrap="b:9092").kafka_common_config()
    assert plain == {"bootstrap.servers": "b:9092", "security.protocol": "PLAINTEXT"}
    ssl_only = Settings(kafka_security_protocol="SSL", kafka_ssl_ca_location="/ca.pem",
                        kafka_sasl_password=SASL_PASSWORD).kafka_common_config()
    assert "sasl.password" not in ssl_only and ssl_only["ssl.ca.location"] == "/ca.pem"
    # librdkafka itself accepts the keys (it rejects unknown ones at construction).
    from confluent_kafka import Consumer
    ca, _key = _self_signed(tmp_path, "kafka-ca")
    Consumer({**s.kafka_common_config(), "ssl.ca.location": str(ca), "group.id": "probe"}).close()


@pytest.mark.slow
def test_sasl_ssl_against_a_plaintext_broker_is_not_ready_and_leaks_nothing(
        kafka_bootstrap, database_url, db_schema, new_topic, model, tmp_path):
    topic = new_topic(1)
    cert, _key = _self_signed(tmp_path, "kafka-ca")
    # The database is unreachable too (nothing listens on the port): its errors get logged, never its URL.
    parts = urllib.parse.urlsplit(database_url)
    dead_db = urllib.parse.urlunsplit(parts._replace(netloc=f"clazzify:{DB_PASSWORD}@127.0.0.1:{h.free_port()}"))
    settings = fh.fault_settings(kafka_bootstrap, dead_db, db_schema, topic,
                                 model, log_level="DEBUG", kafka_security_protocol="SASL_SSL",
                                 kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="clazzify",
                                 kafka_sasl_password=SASL_PASSWORD, kafka_ssl_ca_location=str(cert))
    fleet = fh.Fleet(settings, tmp_path)
    member = fleet.start("sasl")
    try:
        fleet.wait_up(member)
        # Not ready: Kafka at once; the database once the idle health check has tried it (~5 s).
        status, body = h.wait_for(lambda: (lambda r: r if r[0] == 503 and not r[1]["checks"]["database"]
                                           else None)(member.readyz()), 30, what="database check false")
        assert body["checks"]["kafka"] is False, body
        assert member.alive()
        rc = fleet.stop("sasl", timeout=60)
    finally:
        fleet.stop_all()
    assert rc == 0
    log = member.log.read_text(errors="replace")
    assert "database unavailable" in log
    for secret in SECRETS:
        assert secret not in log
    fh.write_figures("sasl_ssl_misconfigured", {"readyz": [status, body], "exit_code": rc,
                                                "log_lines_scanned": log.count("\n"), "secrets_found": 0})


# ------------------------------------------------------------------------ PostgreSQL TLS
def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the openssl CLI), and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def tls_postgres(tmp_path):
    """A private PostgreSQL with ssl=on and a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    from localservices import Postgres
    from localservices.postgres import ensure_os_user
    pg = Postgres(Path(tempfile.mkdtemp(prefix="clazzify-tls-pg-")))
    try:
        pg.start()
        cert, key = _self_signed(tmp_path, "server")
        for src in (cert, key):
            dst = pg.data_dir / src.name
            shutil.copy(src, dst)
            ids = ensure_os_user(pg.os_user)
            if ids:
                os.chown(dst, *ids)
            dst.chmod(0o600)
        conn = psycopg2.connect(pg.url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET ssl = on")
            cur.execute("ALTER SYSTEM SET ssl_cert_file = 'server.crt'")
            cur.execute("ALTER SYSTEM SET ssl_key_file = 'server.key'")
            cur.execute("SELECT pg_reload_conf()")
        conn.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg2.connect(pg.url + "?sslmode=require", connect_timeout=5).close()
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield pg, cert
    finally:
        pg.purge()


@pytest.mark.slow
def test_postgres_tls_verify_full_with_a_self_signed_certificate(
        kafka_bootstrap, new_topic, model, tmp_path, tls_postgres):
    pg, cert = tls_postgres
    schema = "tls"
    tls_url = f"{with_password(pg.url, DB_PASSWORD)}?sslmode=verify-full&sslrootcert={cert}"
    # The wrong root: refused as a transient store error whose text holds no password.
    other_root, _ = _self_signed(tmp_path, "other-root")
    wrong = Store(f"{pg.url}?sslmode=verify-full&sslrootcert={other_root}", schema)
    with pytest.raises(TransientError) as refused:
        wrong.ping()
    assert "certificate verify failed" in str(refused.value) and DB_PASSWORD not in str(refused.value)
    # The consumer end to end over TLS.
    topic, dlq = new_topic(1), new_topic(1, prefix="dlq")
    images = {f"tls-{i}": h.jpeg(i, size=(64, 64)) for i in range(5)}
    h.produce(kafka_bootstrap, topic, [h.inline(k, v) for k, v in images.items()])
    settings = h.settings_for(kafka_bootstrap, tls_url, schema, topic, model, dlq_topic=dlq)
    with h.running_app(settings):
        got = h.wait_rows(pg.url, schema, len(images), timeout=60)
        conn = psycopg2.connect(pg.url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                            "WHERE a.application_name = 'clazzify'")
                sessions = cur.fetchall()
        finally:
            conn.close()
    assert sessions and all(ssl for ssl, _version in sessions), sessions
    assert {r["image_id"] for r in got} == set(images)
    for row in got:
        want = h.expected_scores(images[row["image_id"]], model)
        np.testing.assert_allclose([row["scores"][k] for k in fh.LABELS], want, atol=fh.SCORE_ATOL)
    fh.write_figures("postgres_tls", {"rows": len(got), "tls_sessions": [list(s) for s in sessions],
                                      "wrong_root_refused": True})
