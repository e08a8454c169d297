"""`make demo`'s script prints classified rows against the real services (issue 2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.support import harness as h


def test_demo_publishes_classifies_and_prints_rows(kafka_bootstrap, database_url):
    env = {**os.environ, "CLAZZIFY_KAFKA_BOOTSTRAP": kafka_bootstrap, "CLAZZIFY_DATABASE_URL": database_url,
           "PYTHONPATH": str(h.ROOT)}
    pid_file = h.ROOT / ".services" / "demo-consumer.pid"
    pid_file.parent.mkdir(exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "tools.demo", "--count", "12", "--metrics-port",
                             str(h.free_port())], env=env, cwd=h.ROOT, capture_output=True, text=True, timeout=300)
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "12/12 images classified" in result.stdout
        table = [line for line in result.stdout.splitlines() if "demo-mean-colour-v1" in line]
        assert len(table) == 12
        assert any("skimage-" in line for line in table)  # real photos shipped with scikit-image
        assert "/metrics" in result.stdout and "make demo-stop" in result.stdout
    finally:
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
            pid_file.unlink()
