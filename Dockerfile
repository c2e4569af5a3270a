# syntax=docker/dockerfile:1
# Saga images, one target per service (`make images` builds them all, see k8s/images/build.py):
#   optimizer     the gRPC optimizer service
#   trainer       the GPU worker, on the TensorFlow GPU image
#   trainer-cpu   the same worker on the slim Python base (CPU TensorFlow), for CPU-only clusters
#   serving-sync  the TF Serving sidecar
#   tools         the `saga` CLI for people and jobs
# e.g. docker build --target optimizer -t REGISTRY/saga-optimizer:TAG .
# Every image installs exactly the versions in requirements.lock (checked at build time) and runs as
# the unprivileged user 10001. See docs/DEPLOY.md for why each base image was chosen.

# python:3.11 because the project is pinned to Python 3.11 (pyproject requires-python, the lock).
# Where no registry can be reached, `make images` builds a Debian bookworm base (Python 3.11 too)
# with debootstrap and passes it here.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
# The official TensorFlow GPU image ships CUDA/cuDNN and TensorFlow built against them, on Python 3.11
# (Ubuntu 22.04 + deadsnakes python3.11); its TF version must equal the lock's (checked below).
ARG TF_GPU_IMAGE=tensorflow/tensorflow:2.21.0-gpu

# ---------------------------------------------------------------------------------------------------
# python-base: the user every image runs as and the environment every Python service shares.
FROM ${PYTHON_IMAGE} AS python-base
RUN groupadd --system --gid 10001 saga \
    && useradd --system --uid 10001 --gid saga --home-dir /home/saga --create-home \
       --shell /usr/sbin/nologin saga
# Nothing here names a path a process writes: every such path is derived from the process's flags
# by saga/runtime_paths.py and lives on a volume the manifests declare (the root is read-only).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/home/saga
WORKDIR /home/saga

# ---------------------------------------------------------------------------------------------------
# python-deps: a virtualenv with the project's runtime dependencies at the lock's versions.
# requirements.lock is the freeze of the tested development environment (it also holds test tools),
# so it is applied as constraints to the runtime dependencies read from pyproject.toml: the image gets
# the runtime closure only, each package at its locked version. This layer depends on the two files
# only, so code changes do not reinstall TensorFlow.
# The wheels are kept in a build cache (a directory that persists between builds on one machine), so
# a rebuild installs TensorFlow without downloading it again; nothing of the cache lands in a layer.
# The locked setuptools and wheel come first: the base's pip builds GPyOpt (an sdist) with them.
FROM python-base AS python-deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml requirements.lock ./
RUN --mount=type=cache,id=saga-wheels,target=/wheels,sharing=locked \
    python -m venv /opt/venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime.txt \
    && /opt/venv/bin/pip install --quiet --find-links /wheels --constraint requirements.lock setuptools wheel \
    && /opt/venv/bin/pip wheel --quiet --wheel-dir /wheels --find-links /wheels --constraint requirements.lock --requirement /tmp/runtime.txt \
    && /opt/venv/bin/pip install --quiet --no-index --find-links /wheels --constraint requirements.lock --requirement /tmp/runtime.txt \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip freeze --all --exclude pip > /tmp/installed.txt \
    && if grep -v -x -F -f requirements.lock /tmp/installed.txt; then \
         echo "the packages above are not pinned in requirements.lock" >&2; exit 1; fi \
    && rm /tmp/runtime.txt /tmp/installed.txt

# ---------------------------------------------------------------------------------------------------
# saga-wheel: the project itself as a wheel, so that a code change rebuilds one small layer.
FROM python-deps AS saga-wheel
COPY saga ./saga
COPY optimizer_svc ./optimizer_svc
COPY trainer_svc ./trainer_svc
COPY serving ./serving
COPY datastore ./datastore
COPY report ./report
COPY trial_contract ./trial_contract
COPY dashboard ./dashboard
# --no-build-isolation: build with the locked setuptools, not whatever PyPI serves today.
RUN /opt/venv/bin/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /dist .

# ---------------------------------------------------------------------------------------------------
# python-runtime: the slim base shared by the CPU services; no compilers, no pip cache, no source tree.
# It builds on python-deps rather than copying its virtualenv, so the dependency layer (TensorFlow,
# most of every image) is written and stored once and shared by optimizer, tools and trainer-cpu.
FROM python-deps AS python-runtime
WORKDIR /home/saga
COPY --from=saga-wheel /dist /tmp/dist
RUN /opt/venv/bin/pip install --quiet --no-deps --no-cache-dir --disable-pip-version-check /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && saga --help > /dev/null

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
ARG SOURCE_DIGEST=unknown
LABEL io.saga.source-digest=$SOURCE_DIGEST

# ---------------------------------------------------------------------------------------------------
# tools: the `saga` CLI for people and jobs (upload datasets, create studies, report, export, classify).
FROM python-runtime AS tools
USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["saga"]
CMD ["--help"]
ARG SOURCE_DIGEST=unknown
LABEL io.saga.source-digest=$SOURCE_DIGEST

# ---------------------------------------------------------------------------------------------------
# trainer-cpu: the worker with the lock's TensorFlow on the slim base (no CUDA). Same layers as tools.
FROM python-runtime AS trainer-cpu
RUN mkdir -p /cache && chown 10001:10001 /cache
USER 10001:10001
EXPOSE 9091
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9091/metrics', timeout=3)"]
ENTRYPOINT ["saga", "trainer"]
CMD ["--optimizer", "optimizer:50051", "--store", "s3://saga", "--metrics-port", "9091", "--cache-dir", "/cache"]
ARG SOURCE_DIGEST=unknown
LABEL io.saga.source-digest=$SOURCE_DIGEST

# ---------------------------------------------------------------------------------------------------
# serving-sync: the TF Serving sidecars. It copies a model version from the object store only once the
# version is complete, into a staging directory on the same volume, then renames it into place, so TF
# Serving never sees a half-copied version (which `mc mirror --watch` would show it). The same image
# runs the gateway that puts TLS and tokens in front of TF Serving (`python -m serving.gateway`), with
# only the modules it imports (no TensorFlow).
FROM python-base AS serving-sync
COPY requirements.lock /tmp/requirements.lock
# The sidecar needs no setuptools, which the base's venv module would bring unpinned.
RUN --mount=type=cache,id=saga-wheels,target=/wheels,sharing=locked \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip uninstall --quiet --yes setuptools \
    && /opt/venv/bin/pip wheel --quiet --no-cache-dir --disable-pip-version-check --wheel-dir /wheels --find-links /wheels --constraint /tmp/requirements.lock minio prometheus-client grpcio \
    && /opt/venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check --no-index --find-links /wheels --constraint /tmp/requirements.lock minio prometheus-client grpcio \
    && /opt/venv/bin/pip freeze --all --exclude pip > /tmp/installed.txt \
    && if grep -v -x -F -f /tmp/requirements.lock /tmp/installed.txt; then \
         echo "the packages above are not pinned in requirements.lock" >&2; exit 1; fi \
    && rm /tmp/requirements.lock /tmp/installed.txt
COPY k8s/serving-sync/sync_models.py /opt/saga/sync_models.py
COPY saga/__init__.py saga/ports.py /opt/saga/saga/
COPY saga/cli/__init__.py saga/cli/security_flags.py /opt/saga/saga/cli/
COPY saga/security/ /opt/saga/saga/security/
COPY serving/__init__.py serving/access.py serving/https.py serving/gateway.py /opt/saga/serving/
ENV PYTHONPATH=/opt/saga
USER 10001:10001
EXPOSE 9102
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9102/metrics', timeout=3)"]
ENTRYPOINT ["python", "/opt/saga/sync_models.py"]
ARG SOURCE_DIGEST=unknown
LABEL io.saga.source-digest=$SOURCE_DIGEST

# ---------------------------------------------------------------------------------------------------
# trainer: the GPU worker. The TF image's Python is used through a virtualenv that sees its system
# site-packages, so the CUDA-enabled TensorFlow of the base image is kept (the lock pins the same
# version, which pip then leaves alone) while every other package comes from the lock.
FROM ${TF_GPU_IMAGE} AS trainer
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml requirements.lock ./
RUN --mount=type=cache,id=saga-pip-gpu,target=/root/.cache/pip,sharing=locked \
    python3 -c "import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 'the TensorFlow base image must have Python 3.11, it has ' + sys.version)" \
    && python3 -m venv --system-site-packages /opt/venv \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime.txt \
    && /opt/venv/bin/pip install --constraint requirements.lock --requirement /tmp/runtime.txt \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip freeze --all --exclude pip --path "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" > /tmp/installed.txt \
    && if grep -v -x -F -f requirements.lock /tmp/installed.txt; then \
         echo "the packages above are not pinned in requirements.lock" >&2; exit 1; fi \
    && /opt/venv/bin/python -c "import importlib.metadata as m; v = m.version('tensorflow'); locked = [l.split('==')[1] for l in open('requirements.lock').read().split() if l.startswith('tensorflow==')]; assert [v] == locked, f'base image TensorFlow {v} differs from the lock {locked}'"
COPY --from=saga-wheel /dist /tmp/dist
RUN /opt/venv/bin/pip install --no-deps /tmp/dist/*.whl \
    && /opt/venv/bin/saga --help > /dev/null \
    && rm -rf /src /tmp/dist \
    && groupadd --system --gid 10001 saga \
    && useradd --system --uid 10001 --gid saga --home-dir /home/saga --create-home \
       --shell /usr/sbin/nologin saga \
    && mkdir -p /cache && chown 10001:10001 /cache
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/home/saga
WORKDIR /home/saga
USER 10001:10001
EXPOSE 9091
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9091/metrics', timeout=3)"]
ENTRYPOINT ["saga", "trainer"]
CMD ["--optimizer", "optimizer:50051", "--store", "s3://saga", "--metrics-port", "9091", "--cache-dir", "/cache"]
ARG SOURCE_DIGEST=unknown
LABEL io.saga.source-digest=$SOURCE_DIGEST
