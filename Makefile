# Saga: `make demo` runs the whole system on synthetic data; `make test` runs the test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv sysdeps test demo proto lock bench clean vendor

venv: $(STAMP)

# Builds the virtualenv from nothing, with the exact versions in requirements.lock.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Debian tools the tests use: Chromium opens the HTML of `saga report` (tests/report); chromium-driver
# lets Selenium drive it through the dashboard (tests/dashboard).
sysdeps:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and chromium-driver (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else \
	    echo "chromium or chromedriver is missing: run 'sudo apt-get install chromium chromium-driver'" \
	         "(the report and dashboard tests open pages in it)" >&2; \
	    exit 1; \
	  fi; }

test: venv sysdeps
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

clean:
	rm -rf $(VENV) .saga
