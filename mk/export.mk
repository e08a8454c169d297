# export/: Keras model -> the gated ONNX model file the consumer serves (docs/export.md).
# Included by the main Makefile (which defines PY), or run alone: make -f mk/export.mk ...
#
#   make export MODEL=runs/r1/model.keras OUT=models/r1
#   make export MODEL=runs/r1/model.keras OUT=models/r1 HOLDOUT=data/restaurants.h5 \
#        EXPORT_FLAGS="--fp16 --optimize"
#   make export-bench            # size and CPU throughput of fp32 / fp16 / optimised files
#   make test-export             # tests/unit/export (about a minute on two cores)

# The main Makefile defines PY; this default lets the file run alone.
PY ?= .venv/bin/python
MODEL ?=
OUT ?=
HOLDOUT ?=
EXPORT_FLAGS ?=
BENCH_FLAGS ?= --batch 32 --seconds 10

.PHONY: export export-bench test-export

export:
	@if [ -z "$(MODEL)" ] || [ -z "$(OUT)" ]; then \
		echo "usage: make export MODEL=path/to/model.keras OUT=dir [HOLDOUT=data.h5|folder] [EXPORT_FLAGS='--fp16 --optimize']"; \
		exit 2; \
	fi
	$(PY) -m export "$(MODEL)" --out "$(OUT)" $(if $(HOLDOUT),--holdout "$(HOLDOUT)") $(EXPORT_FLAGS)

export-bench:
	$(PY) -m export.bench $(BENCH_FLAGS)

test-export:
	$(PY) -m pytest tests/unit/export -q
