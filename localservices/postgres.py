"""A real PostgreSQL server in a scratch folder, on a free loopback port.

Usage::

    pg = Postgres(Path(".services/pg"))
    pg.start()         # initdb once, pg_ctl start, wait for SELECT 1, create the database
    print(pg.url)      # postgresql://clazzify@127.0.0.1:<port>/clazzify
    pg.stop()          # pg_ctl stop -m fast; start() again keeps port and data

PostgreSQL refuses to run as root, so when we are root the server runs as a system user
(``clazzify-pg``, created on first use). Authentication is ``trust`` and the server listens
on 127.0.0.1 only: a development and test database, never a production one.
"""
from __future__ import annotations

import glob
import grp
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import ports, procs
from .errors import NotConfiguredError, ServiceError, StartError, ToolMissingError

HOST = ports.HOST
OS_USER = "clazzify-pg"
_PORT_CONFLICT = ("could not bind", "Address already in use")


def find_bindir() -> Path:
    """Where initdb/pg_ctl live: $CLAZZIFY_PG_BINDIR, Debian's versioned folder, or the PATH."""
    explicit = os.environ.get("CLAZZIFY_PG_BINDIR")
    candidates = [explicit] if explicit else []
    candidates += sorted(
        (str(Path(p).parent) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
        reverse=True,
    )
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).parent))
    for cand in candidates:
        if cand and all(os.access(Path(cand) / t, os.X_OK) for t in ("initdb", "pg_ctl", "psql")):
            return Path(cand)
    raise ToolMissingError(
        "PostgreSQL server binaries (initdb, pg_ctl, psql) not found; install Debian's "
        "postgresql package or set CLAZZIFY_PG_BINDIR"
    )


def ensure_os_user(name: str = OS_USER) -> tuple[int, int] | None:
    """(uid, gid) of the unprivileged user to run the server as, creating it if needed;
    None when we are not root (then the server runs as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        try:
            grp.getgrnam(name)
            group_opt = ["-g", name]
        except KeyError:
            group_opt = ["--user-group"]
        done = subprocess.run(
            [useradd, "--system", *group_opt, "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )
        try:  # re-read: a concurrent run may have created it first
            pw = pwd.getpwnam(name)
        except KeyError:
            raise ServiceError(f"could not create system user {name!r}: {done.stderr.strip()}") from None
    return pw.pw_uid, pw.pw_gid


class Postgres:
    """Control of one local PostgreSQL cluster whose state lives in `workdir`."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        database: str = "clazzify",
        user: str = "clazzify",
        os_user: str = OS_USER,
    ) -> None:
        self.workdir = Path(workdir).absolute()
        self.database = database
        self.user = user
        self.os_user = os_user
        self.state_path = self.workdir / "state.json"

    # ----------------------------------------------------------------- endpoints
    def _state(self) -> dict:
        state = procs.load_json(self.state_path)
        if "port" not in state:
            raise NotConfiguredError(f"no PostgreSQL was ever started in {self.workdir}")
        return state

    @property
    def port(self) -> int:
        return int(self._state()["port"])

    @property
    def url(self) -> str:
        """`postgresql://clazzify@127.0.0.1:<port>/clazzify`, stable across stop/start."""
        return f"postgresql://{self.user}@{HOST}:{self.port}/{self.database}"

    @property
    def base(self) -> Path:
        """Folder holding data/, the socket dir and postgres.log (normally `workdir`)."""
        return Path(procs.load_json(self.state_path).get("base", self.workdir))

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    # ----------------------------------------------------------------- helpers
    def _run(self, tool: str, *args: str, timeout: float = 120.0, as_owner: bool = True,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program (as the server's OS user when `as_owner` and we are root)."""
        bindir = Path(procs.load_json(self.state_path).get("bindir") or find_bindir())
        ids = ensure_os_user(self.os_user) if as_owner else None
        extra = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.base),
                    "PGCONNECT_TIMEOUT": "5", **(env or {})}
        # pg_ctl start leaves the postmaster holding its stdout: a file, not a pipe, so
        # reading our output never waits for the server to exit.
        with tempfile.TemporaryFile() as out:
            try:
                done = subprocess.run(
                    [str(bindir / tool), *args], stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, cwd=self.base if self.base.exists() else "/",
                    env=full_env, timeout=timeout, start_new_session=True, **extra,
                )
            except subprocess.TimeoutExpired as exc:
                raise ServiceError(f"{tool} did not finish within {timeout:.0f} s") from exc
            out.seek(0)
            text = out.read().decode(errors="replace")
        return subprocess.CompletedProcess(done.args, done.returncode, text, "")

    def _psql(self, sql: str, database: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return self._run(
            "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(self.port),
            "-U", self.user, "-d", database or self.database, "-c", sql, timeout=timeout, as_owner=False,
        )

    def _accessible_by_owner(self, path: Path) -> bool:
        if os.geteuid() != 0:
            return True
        ids = ensure_os_user(self.os_user)
        assert ids is not None
        probe = subprocess.run(
            ["/bin/sh", "-c", 'test -x "$1" && test -w "$1"', "sh", str(path)],
            user=ids[0], group=ids[1], extra_groups=[], cwd="/", stdin=subprocess.DEVNULL,
        )
        return probe.returncode == 0

    def _prepare(self) -> dict:
        """Pick the folder, port and settings; initdb on first use. Returns the state."""
        state = procs.load_json(self.state_path)
        state.setdefault("bindir", str(find_bindir()))
        self.workdir.mkdir(parents=True, exist_ok=True)
        ids = ensure_os_user(self.os_user)
        if "base" not in state:
            base = self.workdir
            if ids:
                os.chown(base, *ids)
                if not self._accessible_by_owner(base):
                    # e.g. a clone under /root (0700): the server user cannot reach it.
                    digest = hashlib.sha1(str(self.workdir).encode()).hexdigest()[:12]
                    base = Path("/var/tmp") / f"clazzify-pg-{digest}"
            state["base"] = str(base)
        base = Path(state["base"])
        base.mkdir(parents=True, exist_ok=True)
        sock = base / "run"
        if len(str(sock)) > 80:  # unix socket paths must fit in 107 bytes
            digest = hashlib.sha1(str(base).encode()).hexdigest()[:12]
            sock = Path(tempfile.gettempdir()) / f"clazzify-pg-{digest}"
        sock.mkdir(parents=True, exist_ok=True)
        state["socket_dir"] = str(sock)
        if ids:
            for path in (base, sock):
                os.chown(path, *ids)
            if self.log_path.exists():
                os.chown(self.log_path, *ids)
        state.setdefault("port", ports.pick_free_port())
        procs.save_json(self.state_path, state)

        data = base / "data"
        if not (data / "PG_VERSION").exists():
            shutil.rmtree(data, ignore_errors=True)
            done = self._run(
                "initdb", "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                "--no-locale", "--no-sync", timeout=180,
            )
            if done.returncode != 0:
                raise StartError(f"initdb failed:\n{done.stdout[-4000:]}")
            with open(data / "postgresql.conf", "a") as conf:
                conf.write("\ninclude 'clazzify.conf'\n")
        self._write_settings(data, state)
        return state

    def _write_settings(self, data: Path, state: dict) -> None:
        settings = {
            "listen_addresses": f"'{HOST}'",
            "port": str(state["port"]),
            "unix_socket_directories": f"'{state['socket_dir']}'",
            "max_connections": "200",
            # A scratch database for tests: durability across an OS crash is not wanted,
            # but commits are still real commits (synchronous_commit stays on).
            "fsync": "off",
            "full_page_writes": "off",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
        }
        text = "# Written by localservices/postgres.py; rewritten on every start.\n" + "".join(
            f"{k} = {v}\n" for k, v in settings.items()
        )
        path = data / "clazzify.conf"
        procs.write_atomic(path, text)
        ids = ensure_os_user(self.os_user)
        if ids:
            os.chown(path, *ids)

    # ----------------------------------------------------------------- lifecycle
    def is_running(self) -> bool:
        if "port" not in procs.load_json(self.state_path) or not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data_dir), timeout=30).returncode == 0

    def is_ready(self) -> bool:
        """True if a real client connection runs SELECT 1 in the database."""
        try:
            done = self._psql("SELECT 1", timeout=10)
        except (ServiceError, NotConfiguredError):
            return False
        return done.returncode == 0 and done.stdout.strip() == "1"

    def start(self, timeout: float = 120.0) -> "Postgres":
        """Start (initdb on first use) and wait for SELECT 1; no-op if running."""
        deadline = time.monotonic() + timeout
        for _ in range(4):
            state = self._prepare()
            if self.is_running():
                break
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            remaining = max(5, int(deadline - time.monotonic()))
            done = self._run(
                "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                "-t", str(remaining), "-s", timeout=remaining + 30,
            )
            if done.returncode == 0:
                break
            log = procs.tail(self.log_path, 40, offset)
            if (not state.get("ever_ready") and any(s in log for s in _PORT_CONFLICT)
                    and deadline - time.monotonic() > 10):
                state.pop("port")  # taken between picking and binding: pick again
                procs.save_json(self.state_path, state)
                continue
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", timeout=60)
            raise StartError(f"PostgreSQL did not start:\n{done.stdout.strip()}\nlast lines of {self.log_path}:\n{log}")
        else:
            raise StartError("PostgreSQL: ports kept colliding; giving up")
        self.wait_ready(deadline - time.monotonic())
        self._ensure_database()
        state = procs.load_json(self.state_path)
        if not state.get("ever_ready"):
            state["ever_ready"] = True
            procs.save_json(self.state_path, state)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            done = self._psql("SELECT 1", database="postgres", timeout=10)
            if done.returncode == 0:
                return
            if not self.is_running():
                raise StartError(f"PostgreSQL exited; last lines of {self.log_path}:\n" + procs.tail(self.log_path))
            if time.monotonic() >= deadline:
                raise StartError(f"PostgreSQL not ready within {timeout:.0f} s: {done.stdout.strip()}")
            time.sleep(0.2)

    def _ensure_database(self) -> None:
        found = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'", database="postgres")
        if found.returncode == 0 and found.stdout.strip() == "1":
            return
        made = self._psql(f'CREATE DATABASE "{self.database}"', database="postgres")
        if made.returncode != 0 and "already exists" not in made.stdout:
            raise StartError(f"could not create database {self.database}: {made.stdout.strip()}")

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> bool:
        """`pg_ctl stop -m <mode>` (fast: roll back open transactions, disconnect clients).
        False if it was not running."""
        if not self.is_running():
            return False
        done = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", str(int(timeout)),
                         timeout=timeout + 30)
        if done.returncode != 0 and self.is_running():
            raise ServiceError(f"pg_ctl stop failed: {done.stdout.strip()}")
        return True

    def kill(self) -> bool:
        """Crash-stop (`pg_ctl stop -m immediate`): the next start runs crash recovery."""
        return self.stop(mode="immediate")

    def restart(self, timeout: float = 120.0) -> "Postgres":
        """Stop (fast) and start again on the same port with the same data."""
        self.stop()
        return self.start(timeout)

    def purge(self) -> None:
        """Stop and delete the cluster (data, log, socket dir)."""
        state = procs.load_json(self.state_path)
        self.stop(mode="immediate")
        for key in ("base", "socket_dir"):
            if key in state:
                shutil.rmtree(state[key], ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
