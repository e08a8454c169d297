"""One typed settings object, read once in ``main()``.

Every field is an environment variable ``CLAZZIFY_<NAME>`` and a command-line
flag ``--<name-with-dashes>``; a flag wins over the environment. Secrets are
:class:`pydantic.SecretStr` (never printed) and may also come from a mounted
file named by ``CLAZZIFY_<NAME>_FILE`` (Kubernetes Secret volumes).

Example::

    >>> from consumer.settings import Settings
    >>> Settings(kafka_bootstrap="127.0.0.1:9092").max_batch_size
    64
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CLAZZIFY_"


class Settings(BaseSettings):
    """Everything the consumer can be told; see ``python -m consumer --help``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid",
                                      validate_default=True)

    # --- Kafka -------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port].")
    input_topic: str = Field("image-uploaded", description="Topic of upload events.")
    dlq_topic: str = Field("image-uploaded.dlq", description="Dead-letter topic for inputs that can never succeed.")
    group_id: str = Field("clazzify", description="Consumer group id shared by all replicas.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol.")
    kafka_sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).")
    kafka_sasl_username: str = Field("", description="SASL username.")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (secret; or CLAZZIFY_KAFKA_SASL_PASSWORD_FILE).")
    kafka_ssl_ca_location: str = Field("", description="CA bundle file for Kafka TLS (empty: system store).")
    session_timeout_ms: int = Field(45000, ge=1000, description="Kafka session.timeout.ms: how long before a silent replica is evicted.")
    max_poll_interval_ms: int = Field(300000, ge=1000, description="Kafka max.poll.interval.ms: the loop always polls well within this.")

    # --- PostgreSQL --------------------------------------------------------
    database_url: SecretStr = Field(SecretStr("postgresql://clazzify@127.0.0.1:5432/clazzify"),
                                    description="PostgreSQL URL (secret; or CLAZZIFY_DATABASE_URL_FILE). Add ?sslmode=verify-full&sslrootcert=... for TLS.")
    database_schema: str = Field("public", description="Schema holding the image_classifications table.")
    migrate_on_start: bool = Field(True, description="Create/upgrade the schema when the table is missing (idempotent, under an advisory lock). Set false where a migration Job owns the schema.")

    # --- Model -------------------------------------------------------------
    model_path: Path = Field(Path("models/model.onnx"), description="ONNX model file (contract 2 of DESIGN.md).")
    providers: str = Field("auto", description="ONNX Runtime providers, comma-separated, or 'auto' (CUDA when present, else CPU).")
    intra_op_threads: int = Field(1, ge=0, description="ONNX Runtime intra-op threads (0: one per core). 1 by default: on CPU the decoders already keep every core busy, and a second ORT thread spins and competes with them (measured in BENCHMARKS.md).")

    # --- Batching and pipeline ---------------------------------------------
    max_batch_size: int = Field(64, ge=1, le=4096, description="Images per micro-batch at most.")
    max_batch_wait_ms: int = Field(50, ge=0, description="Longest wait for a micro-batch to fill, from its first image. Decoding starts as records arrive, so this only delays inference; under load batches grow anyway while the pipeline is busy.")
    max_in_flight: int = Field(512, ge=1, description="Images polled but not yet committed; above it partitions are paused.")
    decode_workers: int = Field(0, ge=0, description="Threads decoding images (0: two per core: a decoder also runs Python steps that wait for the GIL, and one per core left cores idle, measured in BENCHMARKS.md).")
    fetch_concurrency: int = Field(16, ge=1, description="Concurrent object-store fetches.")
    drain_timeout_s: float = Field(20.0, ge=0, description="On SIGTERM, how long to finish in-flight work before closing.")

    # --- Fetching (claim-check URLs) ---------------------------------------
    fetch_timeout_s: float = Field(10.0, gt=0, description="Connect+read timeout of one fetch.")
    fetch_max_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest image accepted, bytes (inline or fetched).")
    fetch_max_redirects: int = Field(3, ge=0, description="Redirects followed at most (each one re-checked).")
    fetch_allowed_schemes: str = Field("https,http", description="URL schemes allowed, comma-separated.")
    fetch_allowed_hosts: str = Field("", description="Host allow-list, comma-separated; '*.example.com' matches subdomains; empty: any public host.")
    fetch_allowed_networks: str = Field("", description="CIDRs exempt from the private-address block, comma-separated (an on-prem object store, e.g. 10.20.0.0/16). Empty: only public addresses.")
    fetch_retries: int = Field(4, ge=0, description="Retries of a transient fetch failure (5xx, timeout) before it is dead-lettered.")
    max_image_pixels: int = Field(50_000_000, ge=1, description="Declared pixels above which an image is a decompression bomb.")

    # --- Retries of transient failures --------------------------------------
    retry_initial_s: float = Field(0.5, gt=0, description="First backoff of a transient failure (database, broker, fetch).")
    retry_max_s: float = Field(30.0, gt=0, description="Longest backoff between retries.")

    # --- HTTP / observability -----------------------------------------------
    metrics_port: int = Field(9100, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz (and /v1/classify); 0 picks a free one.")
    metrics_host: str = Field("0.0.0.0", description="Address the HTTP server binds.")
    classify_token: SecretStr = Field(SecretStr(""), description="Bearer token required by POST /v1/classify (secret; or CLAZZIFY_CLASSIFY_TOKEN_FILE). Empty: no token.")
    classify_rate_per_s: float = Field(50.0, ge=0, description="POST /v1/classify requests per second per replica (token bucket; 0: unlimited).")
    classify_timeout_s: float = Field(30.0, gt=0, description="Longest a POST /v1/classify request waits for its result.")
    log_format: Literal["auto", "json", "text"] = Field("auto", description="Log format: json in a container, text at a terminal ('auto').")
    log_level: str = Field("INFO", description="Log level.")

    # --- Fault injection (tests only) ----------------------------------------
    fault_points: str = Field("", description="Test-only: comma-separated fault points that kill the process (see consumer/faults.py). Keep empty in production.")

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def fetch_schemes(self) -> tuple[str, ...]:
        return tuple(s.strip().lower() for s in self.fetch_allowed_schemes.split(",") if s.strip())

    @property
    def fetch_hosts(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.fetch_allowed_hosts.split(",") if h.strip())

    def effective_decode_workers(self) -> int:
        return self.decode_workers or 2 * (os.cpu_count() or 1)

    def kafka_common_config(self) -> dict[str, Any]:
        """librdkafka settings shared by the consumer, the producer and the admin client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol.endswith("SSL") and self.kafka_ssl_ca_location:
            config["ssl.ca.location"] = self.kafka_ssl_ca_location
        return config

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log: secrets shown as '**********'."""
        return {name: (str(value) if isinstance(value, SecretStr) else value)
                for name, value in self}


SECRET_FIELDS = tuple(name for name, f in Settings.model_fields.items() if f.annotation is SecretStr)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting, its help naming the environment variable."""
    group = parser.add_argument_group("settings (flag, or environment variable)")
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = field.default.get_secret_value() and "(set)" if isinstance(field.default, SecretStr) else field.default
        help_text = f"{field.description} [env {env_name(name)}; default: {default!s}]"
        if name in SECRET_FIELDS:
            help_text = f"{field.description} [env {env_name(name)} or {env_name(name)}_FILE]"
        group.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_text)


def load(args: argparse.Namespace | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from the environment (and ``*_FILE`` secrets), then flags."""
    env = os.environ if environ is None else environ
    overrides: dict[str, Any] = {}
    for name in SECRET_FIELDS:
        file_var = env_name(name) + "_FILE"
        if env.get(file_var) and not env.get(env_name(name)):
            overrides[name] = Path(env[file_var]).read_text(encoding="utf-8").strip()
    if environ is not None:
        for name in Settings.model_fields:
            if env_name(name) in env:
                overrides.setdefault(name, env[env_name(name)])
    if args is not None:
        for name in Settings.model_fields:
            value = getattr(args, name, None)
            if value is not None:
                overrides[name] = value
    if environ is not None:
        # Only the given mapping counts: model_validate skips the process environment.
        return Settings.model_validate(overrides)
    return Settings(**overrides)
