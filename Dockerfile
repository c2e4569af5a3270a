# Saga images, one target per service:
#   docker build --target optimizer    -t REGISTRY/saga-optimizer:TAG .
#   docker build --target trainer      -t REGISTRY/saga-trainer:TAG .
#   docker build --target serving-sync -t REGISTRY/saga-serving-sync:TAG .
#   docker build --target tools        -t REGISTRY/saga-tools:TAG .
# Every image installs exactly the versions in requirements.lock (checked at build time) and runs as
# the unprivileged user 10001. See docs/DEPLOY.md for why each base image was chosen.

# python:3.11 because the project is pinned to Python 3.11 (pyproject requires-python, the lock).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
# The official TensorFlow GPU image ships CUDA/cuDNN and TensorFlow built against them, on Python 3.11
# (Ubuntu 22.04 + deadsnakes python3.11); its TF version must equal the lock's (checked below).
ARG TF_GPU_IMAGE=tensorflow/tensorflow:2.21.0-gpu

# ---------------------------------------------------------------------------------------------------
# python-deps: a virtualenv with the project's runtime dependencies at the lock's versions.
# requirements.lock is the freeze of the tested development environment (it also holds test tools),
# so it is applied as constraints to the runtime dependencies read from pyproject.toml: the image gets
# the runtime closure only, each package at its locked version. This layer depends on the two files
# only, so code changes do not reinstall TensorFlow.
FROM ${PYTHON_IMAGE} AS python-deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime.txt \
    && /opt/venv/bin/pip install --constraint requirements.lock --requirement /tmp/runtime.txt \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip freeze --all --exclude pip > /tmp/installed.txt \
    && if grep -v -x -F -f requirements.lock /tmp/installed.txt; then \
         echo "the packages above are not pinned in requirements.lock" >&2; exit 1; fi
COPY saga ./saga
COPY optimizer_svc ./optimizer_svc
COPY trainer_svc ./trainer_svc
COPY serving ./serving
COPY datastore ./datastore
COPY report ./report
COPY dashboard ./dashboard
# --no-build-isolation: build with the locked setuptools, not whatever PyPI serves today.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/saga --help > /dev/null

# ---------------------------------------------------------------------------------------------------
# python-runtime: the slim base shared by the CPU services; no compilers, no pip cache, no source tree.
FROM ${PYTHON_IMAGE} AS python-runtime
RUN groupadd --system --gid 10001 saga \
    && useradd --system --uid 10001 --gid saga --home-dir /home/saga --create-home \
       --shell /usr/sbin/nologin saga
COPY --from=python-deps /opt/venv /opt/venv
# MPLCONFIGDIR: GPyOpt imports matplotlib, which needs a writable config dir on a read-only root.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/home/saga
WORKDIR /home/saga

# ---------------------------------------------------------------------------------------------------
# optimizer: the gRPC optimizer service; its SQLite database lives on the volume mounted at /data.
FROM python-runtime AS optimizer
RUN mkdir -p /data && chown 10001:10001 /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 50051 9090
# Docker/compose health: the standard gRPC health service on the serving port (Kubernetes uses its
# native grpc probe instead, see k8s/base/optimizer).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; s = g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(), timeout=3).status; sys.exit(0 if s == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["saga", "optimizer"]
CMD ["--port", "50051", "--db", "/data/saga.db", "--metrics-port", "9090"]

# ---------------------------------------------------------------------------------------------------
# tools: the `saga` CLI for people and jobs (upload datasets, create studies, report, export, classify).
FROM python-runtime AS tools
USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["saga"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------
# serving-sync: the TF Serving sidecar. It copies a model version from the object store only once the
# version is complete, into a staging directory on the same volume, then renames it into place, so TF
# Serving never sees a half-copied version (which `mc mirror --watch` would show it).
FROM ${PYTHON_IMAGE} AS serving-sync
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --constraint /tmp/requirements.lock minio prometheus-client \
    && /opt/venv/bin/pip freeze --all --exclude pip > /tmp/installed.txt \
    && if grep -v -x -F -f /tmp/requirements.lock /tmp/installed.txt; then \
         echo "the packages above are not pinned in requirements.lock" >&2; exit 1; fi \
    && rm /tmp/requirements.lock /tmp/installed.txt \
    && groupadd --system --gid 10001 saga \
    && useradd --system --uid 10001 --gid saga --no-create-home --shell /usr/sbin/nologin saga
COPY k8s/serving-sync/sync_models.py /opt/saga/sync_models.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 9102
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9102/metrics', timeout=3)"]
ENTRYPOINT ["python", "/opt/saga/sync_models.py"]

# ---------------------------------------------------------------------------------------------------
# trainer: the GPU worker. The TF image's Python is used through a virtualenv that sees its system
# site-packages, so the CUDA-enabled TensorFlow of the base image is kept (the lock pins the same
# version, which pip then leaves alone) while every other package comes from the lock.
FROM ${TF_GPU_IMAGE} AS trainer
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml requirements.lock ./
RUN python3 -c "import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 'the TensorFlow base image must have Python 3.11, it has ' + sys.version)" \
    && python3 -m venv --system-site-packages /opt/venv \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime.txt \
    && /opt/venv/bin/pip install --constraint requirements.lock --requirement /tmp/runtime.txt \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip freeze --all --exclude pip --path "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" > /tmp/installed.txt \
    && if grep -v -x -F -f requirements.lock /tmp/installed.txt; then \
         echo "the packages above are not pinned in requirements.lock" >&2; exit 1; fi \
    && /opt/venv/bin/python -c "import importlib.metadata as m; v = m.version('tensorflow'); locked = [l.split('==')[1] for l in open('requirements.lock').read().split() if l.startswith('tensorflow==')]; assert [v] == locked, f'base image TensorFlow {v} differs from the lock {locked}'"
COPY saga ./saga
COPY optimizer_svc ./optimizer_svc
COPY trainer_svc ./trainer_svc
COPY serving ./serving
COPY datastore ./datastore
COPY report ./report
COPY dashboard ./dashboard
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/saga --help > /dev/null \
    && rm -rf /src \
    && groupadd --system --gid 10001 saga \
    && useradd --system --uid 10001 --gid saga --home-dir /home/saga --create-home \
       --shell /usr/sbin/nologin saga \
    && mkdir -p /cache && chown 10001:10001 /cache
# KERAS_HOME: downloaded ImageNet weights land on the cache volume, not the (read-only) root.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/cache/keras \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/home/saga
WORKDIR /home/saga
USER 10001:10001
EXPOSE 9091
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9091/metrics', timeout=3)"]
ENTRYPOINT ["saga", "trainer"]
CMD ["--optimizer", "optimizer:50051", "--store", "s3://saga", "--metrics-port", "9091", "--cache-dir", "/cache"]
