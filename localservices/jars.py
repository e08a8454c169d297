"""Fetch Apache Kafka's runtime jars from Maven Central once, into a shared cache folder."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import ServiceError, ToolMissingError

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
_MARKER = ".complete"


def pom_kafka_version() -> str:
    """The Kafka version pinned in localservices/kafka/pom.xml."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise ServiceError(f"no <kafka.version> in {POM}")
    return match.group(1).strip()


def wanted_version() -> str:
    """CLAZZIFY_KAFKA_VERSION if set (to try another release), else the pom's version."""
    return os.environ.get("CLAZZIFY_KAFKA_VERSION") or pom_kafka_version()


def have_jars(lib_dir: Path, version: str | None = None) -> bool:
    """True if `lib_dir` holds a complete fetch of `version`."""
    marker = lib_dir / _MARKER
    try:
        return marker.read_text().strip() == (version or wanted_version())
    except OSError:
        return False


def ensure_kafka_jars(lib_dir: Path, *, timeout: float = 900.0, quiet: bool = False) -> Path:
    """Make `lib_dir` hold kafka_2.13 and its runtime dependencies; fetch with Maven if needed.

    Safe to call from several processes at once (a file lock serialises the fetch) and
    atomic (jars land in a scratch folder that is renamed into place when complete).
    """
    version = wanted_version()
    if have_jars(lib_dir, version):
        return lib_dir
    lib_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(lib_dir.parent / f".{lib_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if have_jars(lib_dir, version):
            return lib_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ToolMissingError("mvn (Apache Maven) is needed once to fetch the Kafka jars")
        scratch = lib_dir.with_name(f"{lib_dir.name}.fetch-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        if not quiet:
            print(f"localservices: fetching kafka_2.13 {version} jars with Maven ...", file=sys.stderr)
        cmd = [
            mvn, "-B", "-q", "-ntp", "-Dstyle.color=never", "-f", str(POM),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={scratch}",
        ]
        try:
            done = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ServiceError(f"Maven did not finish within {timeout:.0f} s") from exc
        if done.returncode != 0 or not list(scratch.glob("kafka_2.13-*.jar")):
            shutil.rmtree(scratch, ignore_errors=True)
            output = (done.stdout + done.stderr).strip()[-4000:]
            raise ServiceError(f"Maven failed to fetch the Kafka jars (rc={done.returncode}):\n{output}")
        (scratch / _MARKER).write_text(version + "\n")
        shutil.rmtree(lib_dir, ignore_errors=True)
        os.replace(scratch, lib_dir)
    return lib_dir
