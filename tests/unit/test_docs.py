"""The README's configuration table is generated from Settings and must stay in sync."""

import subprocess
import sys
from pathlib import Path

from tools import settings_doc

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_matches_settings():
    text = (ROOT / "README.md").read_text()
    current = text.split(settings_doc.BEGIN, 1)[1].split(settings_doc.END, 1)[0].strip()
    assert current == settings_doc.table(), "run: python -m tools.settings_doc --write"


def test_every_setting_is_a_flag_with_its_env_var_in_help():
    out = subprocess.run([sys.executable, "-m", "consumer", "run", "--help"], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    from consumer.settings import Settings, env_name
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in out and env_name(name) in out


def test_required_setting_names_exist():
    from consumer.settings import Settings
    for var in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "MODEL_PATH", "INPUT_TOPIC", "DLQ_TOPIC", "GROUP_ID",
                "METRICS_PORT", "MAX_BATCH_SIZE", "MAX_BATCH_WAIT_MS"):
        assert var.lower() in Settings.model_fields


def test_every_command_has_help():
    for module in ("consumer", "tools.testmodel", "tools.demo", "tools.settings_doc", "localservices"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), (module, result.stderr)
    for sub in ("run", "migrate", "replay", "redrive"):
        result = subprocess.run([sys.executable, "-m", "consumer", sub, "--help"], capture_output=True, text=True,
                                cwd=ROOT)
        assert result.returncode == 0 and "CLAZZIFY_" in result.stdout, sub
