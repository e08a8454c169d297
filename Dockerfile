# syntax=docker/dockerfile:1
#
# clazzify container images (multi-stage). Targets:
#
#   consumer-gpu  (default, the last stage)  the consumer on NVIDIA CUDA 13 + cuDNN 9, the
#                 runtime that PyPI's onnxruntime-gpu 1.31.1 is built for (its wheel asks for
#                 nvidia-cuda-runtime ~=13.0 and nvidia-cudnn-cu13 ~=9.0).
#   consumer-cpu  the consumer on python:3.11-slim with the CPU onnxruntime (dev, CI, CPU nodes).
#   trainer-gpu   the trainer with tensorflow[and-cuda] (CUDA from PyPI wheels), for the
#                 training Job on a GPU node.
#
#   docker build -t clazzify:gpu .
#   docker build --target consumer-cpu -t clazzify:cpu .
#   docker build --target trainer-gpu -t clazzify-trainer:gpu .
#   docker build --build-arg MODEL_DIR=models -t clazzify:gpu-baked .   # bake models/ in
#
# The consumer images run as uid 10001, need no writable path but /tmp (mount an emptyDir
# there under a read-only root filesystem), read the model from /models/model.onnx
# (mounted by default; baked with MODEL_DIR), and serve /metrics /healthz /readyz and
# /v1/classify on CLAZZIFY_METRICS_PORT (9100). Only the consumer's dependencies are
# installed: never TensorFlow. Versions come from pyproject.toml, via
# deploy/docker/requirements.py.

# Base images come from these ARGs so CI can pin digests (--build-arg CUDA_IMAGE=...@sha256:...).
# checkov reads `FROM ${PYTHON_IMAGE}` as an untagged image; the defaults below are tagged and
# tests/unit/deploy/test_dockerfile.py checks that they are never `latest`:
# checkov:skip=CKV_DOCKER_7: base images are ARGs with explicit version tags (checked by a test)
ARG PYTHON_IMAGE=python:3.11-slim-trixie
ARG CUDA_IMAGE=nvidia/cuda:13.1.1-cudnn-runtime-ubuntu24.04
# The folder copied to /models: a placeholder README by default (mount the model), or the
# folder holding model.onnx and its card (e.g. MODEL_DIR=models) to bake it in.
ARG MODEL_DIR=deploy/docker/no-model

# ---------------------------------------------------------------------------------------
# CPU consumer: build a virtual environment, then copy it into a clean image.
FROM ${PYTHON_IMAGE} AS build-cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/clazzify
COPY pyproject.toml deploy/docker/requirements.py ./
# Dependencies in their own layer: rebuilt only when pyproject.toml changes.
RUN python requirements.py consumer-cpu pyproject.toml > requirements.txt \
 && /opt/clazzify/bin/pip install --no-cache-dir -r requirements.txt
COPY README.md ./
COPY consumer/ consumer/
RUN /opt/clazzify/bin/pip install --no-cache-dir --no-deps . \
 && /opt/clazzify/bin/python -m compileall -q /opt/clazzify

FROM ${PYTHON_IMAGE} AS consumer-cpu
ARG MODEL_DIR
ENV PATH=/opt/clazzify/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    CLAZZIFY_MODEL_PATH=/models/model.onnx \
    CLAZZIFY_METRICS_PORT=9100 \
    CLAZZIFY_LOG_FORMAT=json
RUN groupadd --system --gid 10001 clazzify \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin clazzify
COPY --from=build-cpu /opt/clazzify /opt/clazzify
COPY ${MODEL_DIR}/ /models/
USER 10001:10001
EXPOSE 9100
# No curl in the image: the interpreter checks liveness (urlopen raises on non-2xx).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CLAZZIFY_METRICS_PORT', '9100'), timeout=4)"]
ENTRYPOINT ["python", "-m", "consumer"]

# ---------------------------------------------------------------------------------------
# Trainer on a GPU node. TensorFlow brings its CUDA 12 libraries as PyPI wheels, so a slim
# Python base is enough; the NVIDIA container toolkit injects the driver.
FROM ${PYTHON_IMAGE} AS build-trainer
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/clazzify
COPY pyproject.toml deploy/docker/requirements.py ./
RUN python requirements.py trainer-gpu pyproject.toml > requirements.txt \
 && /opt/clazzify/bin/pip install --no-cache-dir -r requirements.txt
COPY README.md ./
# The trainer imports the one preprocessing definition from consumer/ (Pillow + NumPy only).
COPY consumer/ consumer/
COPY trainer/ trainer/
RUN /opt/clazzify/bin/pip install --no-cache-dir --no-deps . \
 && /opt/clazzify/bin/python -m compileall -q /opt/clazzify

FROM ${PYTHON_IMAGE} AS trainer-gpu
ENV PATH=/opt/clazzify/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    MPLBACKEND=Agg
RUN groupadd --system --gid 10001 clazzify \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin clazzify
COPY --from=build-trainer /opt/clazzify /opt/clazzify
USER 10001:10001
# A batch job, not a server: nothing to probe.
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "trainer"]

# ---------------------------------------------------------------------------------------
# GPU consumer. Ubuntu 24.04's Python 3.12 (inside pyproject's >=3.11,<3.13); the venv is
# built on the same CUDA image so its interpreter path matches the runtime stage.
FROM ${CUDA_IMAGE} AS build-gpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 DEBIAN_FRONTEND=noninteractive
# Ubuntu's python3 packages are left unpinned on purpose: pinning an exact Debian revision
# breaks the build as soon as the archive moves on; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python3 -m venv /opt/clazzify
COPY pyproject.toml deploy/docker/requirements.py ./
RUN python3 requirements.py consumer-gpu pyproject.toml > requirements.txt \
 && /opt/clazzify/bin/pip install --no-cache-dir -r requirements.txt
COPY README.md ./
COPY consumer/ consumer/
RUN /opt/clazzify/bin/pip install --no-cache-dir --no-deps . \
 && /opt/clazzify/bin/python -m compileall -q /opt/clazzify

FROM ${CUDA_IMAGE} AS consumer-gpu
ARG MODEL_DIR
ENV DEBIAN_FRONTEND=noninteractive
# See build-gpu for why the python3 package is unpinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 clazzify \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin clazzify
ENV PATH=/opt/clazzify/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    CLAZZIFY_MODEL_PATH=/models/model.onnx \
    CLAZZIFY_METRICS_PORT=9100 \
    CLAZZIFY_LOG_FORMAT=json
COPY --from=build-gpu /opt/clazzify /opt/clazzify
COPY ${MODEL_DIR}/ /models/
USER 10001:10001
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CLAZZIFY_METRICS_PORT', '9100'), timeout=4)"]
ENTRYPOINT ["python", "-m", "consumer"]
