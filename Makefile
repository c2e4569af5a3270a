# Saga: `make demo` runs the whole system on synthetic data; `make test` runs the test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv sysdeps test demo proto lock bench bench-peers clean

venv: $(STAMP)

# Builds the virtualenv from nothing, with the exact versions in requirements.lock.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Debian tools the tests use: Chromium opens the HTML of `saga report` (tests/report).
sysdeps:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo apt-get install chromium' (the report tests open pages in it)" >&2; \
	    exit 1; \
	  fi; }

test: venv sysdeps
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/saga demo $(DEMO_ARGS)

# Regenerates the gRPC stubs in saga/v1 from proto/saga/v1/*.proto.
proto: venv
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/saga/v1/optimizer.proto

# Re-pins requirements.lock from the current virtualenv.
lock:
	$(PY) -m pip freeze --all --exclude-editable | grep -v -E '^(saga|pip)==' > requirements.lock

bench: venv
	$(PY) bench/proposal_latency.py
	$(PY) bench/input_pipeline.py
	$(PY) bench/serving_latency.py

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
