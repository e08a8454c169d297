"""The gate's failure path: a perturbed graph is refused and leaves no file behind."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export import convert, variants
from export.__main__ import main
from export.errors import ParityError
from export.pipeline import ExportOptions, export_model


def perturb(proto: onnx.ModelProto, factor: float = 1.01) -> onnx.ModelProto:
    """Scale every float weight by ``factor``: a 1% error, far above the fp32 bound."""
    for index, tensor in enumerate(proto.graph.initializer):
        values = numpy_helper.to_array(tensor)
        if values.dtype in (np.float32, np.float16) and values.size > 1:
            proto.graph.initializer[index].CopyFrom(
                numpy_helper.from_array((values * factor).astype(values.dtype), tensor.name))
    return proto


def _left_behind(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_perturbed_graph_is_refused(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ParityError) as failure:
        export_model(ExportOptions(model=run_dir / "model.keras", out=out, holdout_limit=16),
                     post_convert=perturb)
    assert "max|Δ|" in str(failure.value)
    report = failure.value.results["model.onnx"]
    assert report["passed"] is False and report["batches"][0]["max_abs_diff"] > 1e-4
    assert _left_behind(out) == []


def test_cli_exits_non_zero_and_writes_nothing(run_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = convert.keras_to_onnx
    monkeypatch.setattr(convert, "keras_to_onnx", lambda *a, **k: perturb(real(*a, **k)))
    out = tmp_path / "out"
    code = main([str(run_dir / "model.keras"), "--out", str(out), "--holdout-limit", "16",
                 "--log-level", "ERROR"])
    assert code == 3
    assert _left_behind(out) == []


def test_failing_fp16_variant_blocks_the_fp32_file_too(run_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = variants.to_fp16
    monkeypatch.setattr(variants, "to_fp16", lambda proto: perturb(real(proto), 1.5))
    out = tmp_path / "out"
    with pytest.raises(ParityError) as failure:
        export_model(ExportOptions(model=run_dir / "model.keras", out=out, fp16=True,
                                   holdout_limit=16))
    assert set(failure.value.results) == {"model.onnx", "model.fp16.onnx"}
    assert failure.value.results["model.onnx"]["passed"] is True
    assert _left_behind(out) == []
