# Saga: `make demo` runs the whole system on synthetic data; `make test` runs the test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv sysdeps images test-images test demo proto lock bench bench-images bench-peers bench-quality clean vendor

venv: $(STAMP)

# Builds the virtualenv from nothing, with the exact versions in requirements.lock.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Debian tools the tests use: Chromium opens the HTML of `saga report` (tests/report) and
# chromium-driver lets Selenium drive it through the dashboard (tests/dashboard); podman, buildah,
# runc and debootstrap build the images and run them as the manifests do (tests/deploy, skipped with
# the reason where they are missing). As root, `make` installs whatever is missing.
CONTAINER_TOOLS := podman buildah runc debootstrap
sysdeps:
	@missing=""; for tool in chromium chromedriver $(CONTAINER_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	packages=$$(echo "$$missing" | sed 's/chromedriver/chromium-driver/'); \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing$$packages (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$packages >/dev/null; \
	elif ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "chromium or chromedriver is missing: run 'sudo apt-get install chromium chromium-driver'" \
	       "(the report and dashboard tests open pages in it)" >&2; \
	  exit 1; \
	else \
	  echo "note:$$missing missing ('sudo apt-get install$$missing'): the container tests will be skipped"; \
	fi

# Every image of the Dockerfile (k8s/images/build.py): from the official bases where a registry can be
# reached, else from a local Debian base made with debootstrap; layers and downloaded wheels are
# reused between builds. IMAGE_BASE=auto|local|official.
IMAGE_BASE ?= auto
images:
	$(PYTHON) k8s/images/build.py --base $(IMAGE_BASE)

# What `make test` needs for the container test: the CPU images, rebuilt from this tree (cached layers
# make an unchanged tree cost seconds). Skipped, with the reason, where no image builder is installed.
test-images:
	@if command -v buildah >/dev/null && command -v podman >/dev/null || docker info >/dev/null 2>&1; then \
	  $(PYTHON) k8s/images/build.py --base $(IMAGE_BASE) --targets optimizer tools trainer-cpu serving-sync; \
	else \
	  echo "no podman/buildah or docker: the container test will be skipped"; \
	fi

test: venv sysdeps test-images
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/saga demo $(DEMO_ARGS)

# Regenerates the gRPC stubs in saga/v1 from proto/saga/v1/*.proto.
proto: venv
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/saga/v1/optimizer.proto

# Re-fetches the dashboard's charting library from npm (versions and checksums: dashboard/static/vendor/vendor.json).
# The file is committed, so a fresh clone needs no npm; run this only to change the version.
vendor: venv
	$(PY) -m dashboard.vendor

# Re-pins requirements.lock from the current virtualenv.
lock:
	$(PY) -m pip freeze --all --exclude-editable | grep -v -E '^(saga|pip)==' > requirements.lock

bench: venv
	$(PY) bench/proposal_latency.py
	$(PY) bench/input_pipeline.py
	$(PY) bench/serving_latency.py
	$(PY) bench/stopping_savings.py

# Image sizes, cold and cached build times, container start to SERVING and to the first training step.
bench-images: venv sysdeps
	$(PY) bench/images.py

# Saga's best model against baselines on real images (docs/BENCHMARKS.md, "Quality on real images"):
# Fashion-MNIST comes with Debian's dataset-fashion-mnist; about 35 minutes on the 2-core machine.
bench-quality: venv
	@test -d /usr/share/datasets/fashion-mnist || { if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else echo "run 'sudo apt-get install dataset-fashion-mnist'" >&2; exit 1; fi; }
	$(PY) bench/quality.py $(BENCH_ARGS)

# Saga's tuners against Optuna, Keras Tuner and random search (docs/BENCHMARKS.md, "Search").
# The peers live in their own virtualenv, never in Saga's. Resumable: a rerun adds what is missing.
PEERS_VENV := bench/.venv-peers
$(PEERS_VENV)/.installed: bench/peers/requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet -r bench/peers/requirements.txt
	touch $@

bench-peers: venv $(PEERS_VENV)/.installed
	nice -n 10 $(PY) bench/peers/run.py $(BENCH_ARGS)
	$(PY) bench/peers/aggregate.py

clean:
	rm -rf $(VENV) .saga
