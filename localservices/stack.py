"""Both services together, as `python -m localservices` and the test fixtures use them."""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from . import jars, procs
from .broker import KafkaBroker
from .errors import NotConfiguredError
from .postgres import Postgres

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_workdir() -> Path:
    """$CLAZZIFY_SERVICES_DIR, else `.services` at the repository root."""
    return Path(os.environ.get("CLAZZIFY_SERVICES_DIR") or REPO_ROOT / ".services").absolute()


class LocalServices:
    """A Kafka broker (`workdir/kafka`) and a PostgreSQL (`workdir/pg`) that start and stop together.

    The Kafka jars are cached in `lib_dir` (default `workdir/kafka-lib`), fetched once.
    """

    def __init__(self, workdir: Path | str | None = None, *, lib_dir: Path | str | None = None) -> None:
        self.workdir = Path(workdir).absolute() if workdir else default_workdir()
        self.lib_dir = Path(lib_dir).absolute() if lib_dir else self.workdir / "kafka-lib"
        self.kafka = KafkaBroker(self.workdir / "kafka", lib_dir=self.lib_dir)
        self.postgres = Postgres(self.workdir / "pg")
        self.env_path = self.workdir / "env"

    def up(self, timeout: float = 120.0, quiet: bool = False) -> dict[str, str]:
        """Start whatever is not running, wait until both accept clients, write `env`.

        `timeout` covers start-up only; a first-time jar fetch comes before it.
        """
        say = (lambda msg: None) if quiet else (lambda msg: print(f"localservices: {msg}", file=sys.stderr))
        self.workdir.mkdir(parents=True, exist_ok=True)
        jars.ensure_kafka_jars(self.lib_dir, quiet=quiet)
        t0 = time.monotonic()
        started: list = []
        try:
            if not self.kafka.is_running():
                self.kafka.launch()  # boots in the background while PostgreSQL starts
                started.append(self.kafka)
            if not self.postgres.is_running():
                started.append(self.postgres)
            self.postgres.start(timeout)
            self.kafka.start(max(1.0, timeout - (time.monotonic() - t0)))
        except BaseException:
            for service in started:
                service.stop()
            raise
        if started:
            say(f"ready in {time.monotonic() - t0:.1f} s "
                f"(kafka {self.kafka.bootstrap}, postgres {self.postgres.url})")
        env = self.env()
        procs.write_atomic(self.env_path, render_env(env))
        return env

    def down(self, purge: bool = False) -> None:
        """Stop both (Kafka: SIGTERM then SIGKILL; PostgreSQL: fast). `purge` deletes their data."""
        if purge:
            self.kafka.purge()
            self.postgres.purge()
            self.env_path.unlink(missing_ok=True)
        else:
            self.kafka.stop()
            self.postgres.stop()

    def env(self) -> dict[str, str]:
        """The environment that points clients (and the test fixtures) at these services."""
        return {
            "CLAZZIFY_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "CLAZZIFY_DATABASE_URL": self.postgres.url,
            "CLAZZIFY_SERVICES_DIR": str(self.workdir),
        }

    def status(self) -> dict[str, dict]:
        """Per service: running, ready, endpoint, pid/log/data paths."""
        def endpoint(get):
            try:
                return get()
            except NotConfiguredError:
                return None

        return {
            "kafka": {
                "running": self.kafka.is_running(),
                "ready": self.kafka.is_ready(),
                "bootstrap": endpoint(lambda: self.kafka.bootstrap),
                "pid": self.kafka.pid,
                "log": str(self.kafka.log_path),
                "data": str(self.kafka.data_dir),
            },
            "postgres": {
                "running": self.postgres.is_running(),
                "ready": self.postgres.is_ready(),
                "url": endpoint(lambda: self.postgres.url),
                "log": str(self.postgres.log_path),
                "data": str(self.postgres.data_dir),
            },
        }


def render_env(env: dict[str, str]) -> str:
    return "".join(f"export {k}={v}\n" for k, v in env.items())


def remove_jar_cache(lib_dir: Path) -> None:
    shutil.rmtree(lib_dir, ignore_errors=True)
