"""The model-file contract (DESIGN.md, contract 2), as names both sides can import.

The exporter writes these; the consumer reads them. No dependencies, so the
exporter can import this module without pulling any of the consumer's runtime.
"""

from __future__ import annotations

INPUT_NAME = "image"    # uint8 [N, S, S, 3] RGB, N dynamic
OUTPUT_NAME = "scores"  # float32 [N, C] probabilities, C = len(labels)

META_LABELS = "labels"                  # JSON list, in output order
META_INPUT_SIZE = "input_size"          # "227"
META_MODEL_VERSION = "model_version"    # content digest unless given
META_DATASET_DIGEST = "dataset_digest"  # digest of the training data
META_TRAINED_AT = "trained_at"          # ISO-8601 UTC
META_METRICS = "metrics"                # JSON of the run's headline metrics (optional)
META_PRECISION = "precision"            # "fp32" | "fp16"

REQUIRED_METADATA = (META_LABELS, META_INPUT_SIZE, META_MODEL_VERSION, META_DATASET_DIGEST)
