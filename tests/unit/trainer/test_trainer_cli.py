"""``python -m trainer``: every command explains itself; user errors exit 2 with a message."""

from __future__ import annotations

import pytest

from conftest import call_main, run_trainer
from trainer.__main__ import ARCHS, build_parser


def test_help_of_every_command_names_its_flags():
    result = run_trainer("--help")
    for command in ("build-dataset", "train", "evaluate", "fashion-mnist"):
        assert command in result.stdout
    expected = {
        "build-dataset": ["--out", "--input-size", "--val-fraction", "--test-fraction", "--seed",
                          "--workers", "--min-side", "--max-pixels", "--compression", "--labels"],
        "train": ["--arch", "--out", "--epochs", "--batch-size", "--width-multiplier",
                  "--mixed-precision", "--class-weight", "--augment", "--lr-schedule",
                  "--patience", "--seed", "--backend"],
        "evaluate": ["--split", "--out", "--batch-size"],
        "fashion-mnist": ["--out", "--limit", "--source"],
    }
    parser = build_parser()
    for command, flags in expected.items():
        text = parser._subparsers._group_actions[0].choices[command].format_help()
        for flag in flags:
            assert flag in text, (command, flag)


def test_arch_choices_match_the_models_module():
    from trainer.models import ARCHS as MODEL_ARCHS

    assert ARCHS == MODEL_ARCHS


def test_user_errors_exit_2_with_a_message(tmp_path, caplog):
    assert call_main("build-dataset", tmp_path / "missing", "--out", tmp_path / "x.h5") == 2
    assert "neither a folder nor a CSV manifest" in caplog.text
    assert call_main("train", tmp_path / "missing.h5", "--out", tmp_path / "run") == 2
    assert "no dataset file" in caplog.text
    with pytest.raises(SystemExit) as exit_info:
        call_main("train", "x.h5", "--out", "r", "--arch", "resnet50")
    assert exit_info.value.code == 2


def test_train_refuses_to_overwrite_a_run(trained_run, synthetic_h5, caplog):
    run_dir, _ = trained_run
    assert call_main("train", synthetic_h5, "--out", run_dir, "--epochs", "1") == 2
    assert "already holds a run" in caplog.text and (run_dir / "model.keras").is_file()


def test_train_checks_the_arch_before_creating_the_run(synthetic_h5, tmp_path, caplog):
    assert call_main("train", synthetic_h5, "--out", tmp_path / "run", "--arch", "inceptionv3") == 2
    assert "at least 75" in caplog.text and not (tmp_path / "run").exists()
