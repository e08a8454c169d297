"""``python -m export``: flags, their environment variables, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from export.__main__ import ENV_PREFIX, build_parser, main

REPO = Path(__file__).resolve().parents[3]


def test_help_explains_every_flag_and_its_environment_variable() -> None:
    parser = build_parser()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, action.dest
        assert f"[{ENV_PREFIX}" in action.help, action.dest
    text = subprocess.run([sys.executable, "-m", "export", "--help"], check=True,
                          capture_output=True, text=True, cwd=REPO).stdout
    for flag in ("--out", "--run-dir", "--holdout", "--opset", "--fp16", "--optimize",
                 "--version", "--labels", "--normalize", "--softmax"):
        assert flag in text


def test_usage_error_is_exit_code_2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "m.keras")])  # --out missing
    assert exc.value.code == 2


def test_missing_model_is_exit_code_1(tmp_path: Path) -> None:
    assert main([str(tmp_path / "none.keras"), "--out", str(tmp_path / "o"),
                 "--log-level", "ERROR"]) == 1
    assert not (tmp_path / "o").exists()


def test_flags_and_environment(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CLAZZIFY_EXPORT_OPSET", "17")
    monkeypatch.setenv("CLAZZIFY_EXPORT_HOLDOUT_LIMIT", "8")
    out = tmp_path / "out"
    code = main([str(run_dir / "model.keras"), "--out", str(out), "--version", "v7",
                 "--labels", "a,b,c,d", "--trained-at", "2020-01-01T00:00:00Z",
                 "--log-level", "ERROR"])
    assert code == 0
    card = json.loads((out / "model.json").read_text())
    assert card["opset"] == 17 and card["holdout"]["count"] == 8
    assert card["model_version"] == "v7" and card["labels"] == ["a", "b", "c", "d"]
    assert card["trained_at"] == "2020-01-01T00:00:00Z"
    assert card["source"]["run_dir"] == str(run_dir)  # found beside the model
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(str(out / "model.onnx")) and "\tv7\t" in printed[0]
    assert printed[-1] == str(out / "model.json")
