"""The parity gate: does ONNX Runtime reproduce Keras on held-out images?

Both sides run the same images at batch size 1 and at a larger batch size
(batching bugs, e.g. a batch dimension frozen at conversion, show up only in
one of them). A gate passes when, at every batch size,

* max |Δscore| over every image and class is within ``max_abs_diff``, and
* top-1 agreement is at least ``min_top1``.

Top-1 is judged on *decisive* images only: where Keras' best two scores are
closer than :data:`TIE_MARGIN` the winner is decided by float rounding, not by
the model, and such a tie is counted and reported but never fails a gate. Raw
agreement is reported too. Everything here is plain NumPy; the callers pass in
the two predict functions.

Example::

    >>> import numpy as np
    >>> from export.parity import FP32_GATE, check
    >>> images = np.zeros((4, 8, 8, 3), np.uint8)
    >>> same = lambda x: np.full((len(x), 2), 0.5, np.float32)
    >>> check(FP32_GATE, same, same, images, batch_sizes=(1, 4)).passed
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]

TIE_MARGIN = 1e-5
"""Top-2 score gap below which Keras itself has no meaningful top-1."""


@dataclass(frozen=True)
class Gate:
    """Thresholds one precision must meet."""

    name: str
    max_abs_diff: float
    min_top1: float


FP32_GATE = Gate("fp32", max_abs_diff=1e-4, min_top1=1.0)
FP16_GATE = Gate("fp16", max_abs_diff=1e-2, min_top1=0.995)


@dataclass(frozen=True)
class BatchResult:
    """Keras vs ONNX Runtime at one batch size."""

    batch_size: int
    images: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    decisive_top1_agreement: float
    ties: int


@dataclass
class ParityReport:
    """The gate's verdict and the measurements behind it (goes into the model card)."""

    gate: Gate
    batches: list[BatchResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and bool(self.batches)

    @property
    def max_abs_diff(self) -> float:
        return max((b.max_abs_diff for b in self.batches), default=float("nan"))

    def to_dict(self) -> dict[str, object]:
        return {
            "gate": asdict(self.gate) | {"tie_margin": TIE_MARGIN},
            "passed": self.passed,
            "batches": [asdict(b) for b in self.batches],
            "failures": list(self.failures),
        }

    def summary(self) -> str:
        parts = [f"batch {b.batch_size}: max|Δ|={b.max_abs_diff:.3g} "
                 f"top1={b.decisive_top1_agreement:.2%} ({b.ties} ties) on {b.images}"
                 for b in self.batches]
        return f"{self.gate.name} gate {'passed' if self.passed else 'FAILED'}: " + "; ".join(parts)


def run_batched(predict: Predict, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Call ``predict`` on consecutive slices of ``batch_size`` images; stack float32 scores."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, is {batch_size}")
    chunks = [np.asarray(predict(images[start:start + batch_size]), dtype=np.float32)
              for start in range(0, len(images), batch_size)]
    return np.concatenate(chunks, axis=0)


def compare(reference: np.ndarray, candidate: np.ndarray, batch_size: int) -> BatchResult:
    """Measure how far ``candidate`` scores are from ``reference`` scores ([N, C] each)."""
    if reference.shape != candidate.shape:
        raise ValueError(f"score shapes differ: {reference.shape} vs {candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    # NaN anywhere must fail the gate, so no nan-ignoring reductions here.
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    if np.isnan(candidate).any():
        max_abs = mean_abs = float("nan")
    agree = reference.argmax(axis=1) == candidate.argmax(axis=1)
    top2 = np.sort(reference, axis=1)[:, -2:] if reference.shape[1] > 1 else None
    decisive = (top2[:, 1] - top2[:, 0] > TIE_MARGIN) if top2 is not None \
        else np.ones(len(reference), dtype=bool)
    n_decisive = int(decisive.sum())
    return BatchResult(
        batch_size=batch_size,
        images=int(len(reference)),
        max_abs_diff=max_abs,
        mean_abs_diff=mean_abs,
        top1_agreement=float(agree.mean()) if len(agree) else 1.0,
        decisive_top1_agreement=float(agree[decisive].mean()) if n_decisive else 1.0,
        ties=int(len(reference) - n_decisive),
    )


def reference_scores(reference: Predict, images: np.ndarray, *,
                     batch_sizes: Sequence[int] = (1, 32),
                     single_limit: int = 32) -> dict[int, np.ndarray]:
    """Keras' scores at each batch size, computed once and shared by every variant's gate."""
    return {b: run_batched(reference, _subset(images, b, single_limit), b) for b in batch_sizes}


def _subset(images: np.ndarray, batch_size: int, single_limit: int) -> np.ndarray:
    return images[:single_limit] if batch_size == 1 else images


def check(gate: Gate, reference: Predict | Mapping[int, np.ndarray], candidate: Predict,
          images: np.ndarray, *, batch_sizes: Sequence[int] = (1, 32),
          single_limit: int = 32) -> ParityReport:
    """Run both sides at each batch size and judge the candidate against ``gate``.

    ``reference`` is Keras' predict function, or its scores precomputed by
    :func:`reference_scores` with the same arguments. Batch size 1 runs on the
    first ``single_limit`` images only (one call per image is slow and adds
    nothing after a few dozen); larger batch sizes run on all of them, the last
    batch possibly short.
    """
    if callable(reference):
        reference = reference_scores(reference, images, batch_sizes=batch_sizes,
                                     single_limit=single_limit)
    report = ParityReport(gate=gate)
    for batch_size in batch_sizes:
        subset = _subset(images, batch_size, single_limit)
        result = compare(reference[batch_size], run_batched(candidate, subset, batch_size),
                         batch_size)
        report.batches.append(result)
        if not result.max_abs_diff <= gate.max_abs_diff:  # also true for NaN
            report.failures.append(
                f"batch {batch_size}: max|Δ| {result.max_abs_diff:.3g} > {gate.max_abs_diff:g}")
        if result.decisive_top1_agreement < gate.min_top1:
            report.failures.append(
                f"batch {batch_size}: top-1 agreement {result.decisive_top1_agreement:.2%} "
                f"< {gate.min_top1:.1%}")
    return report
