# trainer/: labelled images -> HDF5 -> Keras run folder (docs/trainer.md).
# Included by the main Makefile (which defines PY), or run alone: make -f mk/trainer.mk ...
#
#   make fashion-mnist            # Debian's dataset-fashion-mnist end to end: convert -> build-dataset
#                                 # -> train -> evaluate -> export (CPU subset by default; see below)
#   make fashion-mnist FMNIST_LIMIT=60000 FMNIST_SRC=data/fmnist-big-src FMNIST_H5=data/fmnist-big.h5 \
#        FMNIST_RUN=runs/fmnist-big FMNIST_MODEL=models/fmnist-big   # all 60k images, ~25 min on 2 CPU cores, test 0.896
#   make fashion-mnist-clean fashion-mnist FMNIST_LIMIT=60000 FMNIST_SIZE=227 FMNIST_WIDTH=1.0 FMNIST_EPOCHS=30  # GPU
#   make test-trainer             # tests/unit/trainer (about 4 minutes on two cores)
#   make bench-trainer            # training images/s, narrow and full AlexNet at 227 (bench/train_throughput.py)

# The main Makefile defines PY; this default lets the file run alone.
PY ?= .venv/bin/python
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

FMNIST_SOURCE ?= /usr/share/datasets/fashion-mnist
FMNIST_SRC    ?= data/fmnist-src
FMNIST_H5     ?= data/fmnist.h5
FMNIST_RUN    ?= runs/fmnist
FMNIST_MODEL  ?= models/fmnist
# Official training images kept (class-balanced; 60000 = all) and the stored/model input
# size (the production contract is 227): the defaults are a CPU-sized subset.
FMNIST_LIMIT  ?= 10000
FMNIST_SIZE   ?= 64
FMNIST_ARCH   ?= alexnet
FMNIST_WIDTH  ?= 0.5
FMNIST_EPOCHS ?= 10
FMNIST_LR     ?= 0.001
FMNIST_AUGMENT ?= light
FMNIST_BATCH  ?= 64
FMNIST_TRAIN_FLAGS ?=
TRAINER_BENCH_FLAGS ?= --input-size 227 --batch-size 32 --widths 0.25,1.0 --steps 6

.PHONY: fashion-mnist fashion-mnist-data fashion-mnist-clean test-trainer bench-trainer

fashion-mnist: $(FMNIST_RUN)/model.keras ## Fashion-MNIST recipe: convert, build-dataset, train, evaluate, export
	$(PY) -m trainer evaluate $(FMNIST_RUN) $(FMNIST_H5) --split test
	$(PY) -m export $(FMNIST_RUN)/model.keras --out $(FMNIST_MODEL)

fashion-mnist-data: $(FMNIST_H5) ## Fashion-MNIST as HDF5 (installs dataset-fashion-mnist if missing)

$(FMNIST_SOURCE)/train-images-idx3-ubyte.gz:
	dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || $(SUDO) apt-get install -y dataset-fashion-mnist

$(FMNIST_SRC)/manifest.csv: $(FMNIST_SOURCE)/train-images-idx3-ubyte.gz
	rm -rf $(FMNIST_SRC)
	$(PY) -m trainer fashion-mnist --source $(FMNIST_SOURCE) --out $(FMNIST_SRC) --limit $(FMNIST_LIMIT)

# The manifest pins Zalando's official test set; validation comes out of the training part.
$(FMNIST_H5): $(FMNIST_SRC)/manifest.csv
	$(PY) -m trainer build-dataset $(FMNIST_SRC)/manifest.csv --out $@ --overwrite \
		--input-size $(FMNIST_SIZE) --min-side 28 --test-fraction 0 --val-fraction 0.1

$(FMNIST_RUN)/model.keras: $(FMNIST_H5)
	$(PY) -m trainer train $(FMNIST_H5) --out $(FMNIST_RUN) --overwrite --arch $(FMNIST_ARCH) \
		--width-multiplier $(FMNIST_WIDTH) --epochs $(FMNIST_EPOCHS) --batch-size $(FMNIST_BATCH) --augment $(FMNIST_AUGMENT) \
		--learning-rate $(FMNIST_LR) \
		$(FMNIST_TRAIN_FLAGS)

fashion-mnist-clean: ## remove the Fashion-MNIST folders, dataset, run and exported model
	rm -rf $(FMNIST_SRC) $(FMNIST_H5) $(FMNIST_RUN) $(FMNIST_MODEL)

test-trainer: ## tests/unit/trainer (no services; about 4 minutes on two cores)
	$(PY) -m pytest tests/unit/trainer -q

bench-trainer: ## training images/s on this machine (GPU when present), narrow and full AlexNet
	$(PY) bench/train_throughput.py $(TRAINER_BENCH_FLAGS)
