"""Small process helpers: daemon spawn, liveness (zombies count as dead), stop, log tails."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn_daemon(
    argv: Sequence[str], log_path: Path, *, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen:
    """Start `argv` in its own session, output appended to `log_path`, no stdin.

    Its own session means a Ctrl-C at the terminal or a killed `make` does not reach it,
    so it outlives the command that started it (until `down` or `stop()`).
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )


def alive(pid: int | None) -> bool:
    """True if `pid` is a live process; a zombie (exited, not yet reaped) counts as dead."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # Field 3, after the parenthesised command name (which may itself hold spaces).
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def argv_of(pid: int, settle: bool = False) -> list[str]:
    """The process's arguments, or [] if it is gone.

    Right after exec the kernel publishes the new arguments a moment after the exec is
    visible (Popen has returned), so /proc/<pid>/cmdline reads empty for a few
    milliseconds; `settle` waits that out (up to 2 s) instead of reporting [].
    """
    deadline = time.monotonic() + (2.0 if settle else 0.0)
    while True:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return []
        if raw or time.monotonic() >= deadline or not alive(pid):
            return [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        time.sleep(0.01)


def find(*args: str) -> list[int]:
    """Live processes that have every one of `args` among their arguments (exact matches)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            argv = argv_of(pid)
            if argv and all(a in argv for a in args) and alive(pid):
                found.append(pid)
    return sorted(found)


def wait_gone(pid: int, timeout: float, child: subprocess.Popen | None = None) -> bool:
    """Wait until `pid` exits (reaping it when it is our child); True if it did in time."""
    deadline = time.monotonic() + timeout
    own = child is not None and child.pid == pid
    while True:
        if (child.poll() is not None) if own else not alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def terminate(pid: int, timeout: float, child: subprocess.Popen | None = None) -> bool:
    """SIGTERM, wait up to `timeout`, then SIGKILL. True if it exited on SIGTERM."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        wait_gone(pid, 1.0, child)
        return True
    if wait_gone(pid, timeout, child):
        return True
    kill(pid, child)
    return False


def kill(pid: int, child: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """SIGKILL and wait for the process to be gone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_gone(pid, timeout, child)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def save_json(path: Path, data: Mapping) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def tail(path: Path, lines: int = 40, since: int = 0) -> str:
    """The last `lines` lines of a log file, read from byte offset `since`."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            data = f.read()
    except OSError:
        return f"(no log at {path})"
    text = data.decode(errors="replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if text else "(log is empty)"


def read_since(path: Path, since: int = 0) -> str:
    """A log file's text from byte offset `since` ('' if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def excerpt(path: Path, since: int = 0, errors: int = 12, last: int = 15) -> str:
    """What explains a failed start: the log's error lines, then its last lines."""
    lines = read_since(path, since).splitlines()
    if not lines:
        return f"(nothing in {path})"
    marked = [ln for ln in lines if " ERROR " in ln or " FATAL" in ln or ln.startswith("Caused by:")]
    parts = []
    if marked:
        parts += ["-- error lines --", *marked[-errors:], "-- last lines --"]
    parts += lines[-last:]
    return "\n".join(parts)

