# The README's two commands: `make demo` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages the integration tests use (promtool, Prometheus, Alertmanager, Chromium, Redis, wrk).
APT_PACKAGES := prometheus prometheus-alertmanager chromium redis-server wrk valgrind

.PHONY: demo test test-lowest lint install wheel system-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	@# `pip install --group` (PEP 735 dependency groups) needs pip >= 25.1.
	$(BIN)/pip install -q --upgrade "pip>=25.1"

# Dependencies change rarely: reinstall them only when pyproject.toml changes. Development tools
# are PEP 735 dependency groups in pyproject.toml, not extras users could install.
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --group dev ".[demo]"
	touch $@

# The benchmark's peers and uvicorn's fast loop only: the project stays the compiled build that
# `install` made, the one the figures are about (installing ".[bench]" would replace it with a
# pure-Python build).
$(VENV)/.bench-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --group bench
	touch $@

# The package itself is reinstalled (not editable) on every run, so the tests exercise what a
# wheel ships, templates included, with the hot path compiled by mypyc as the speed budget
# assumes (tests/docs/test_packaging.py checks the pure-Python wheel and this machine's compiled
# wheel too).
install: $(VENV)/.deps
	HATCH_BUILD_HOOK_ENABLE_MYPYC=1 $(BIN)/pip install -q --no-deps --force-reinstall .
	@# hatch-mypyc leaves its build products in the source tree; a checkout must stay pure Python
	@# (a stale .so would shadow edits to the .py files, and would leak into a default wheel).
	rm -f asgi_monitor/*.so asgi_monitor/*/*.so *__mypyc*.so

# What a release ships for this machine, into dist/: the sdist, the pure-Python wheel built from it
# (pip's fallback), and the compiled wheel for this interpreter and platform (what pip installs
# where .github/workflows/wheels.yml built one). `python -m build` builds each wheel from the
# sdist in a temporary directory, so no mypyc build product lands in the checkout.
wheel: $(VENV)/.deps
	$(BIN)/python -m build -q --outdir dist .
	HATCH_BUILD_HOOK_ENABLE_MYPYC=1 $(BIN)/python -m build -q --outdir dist .
	@ls dist

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "note: Debian packages$$missing are missing; integration tests will be skipped (they fail under CI=true)"; \
	fi

lint: $(VENV)/.deps
	$(BIN)/ruff check asgi_monitor tests $(wildcard benchmarks)
	$(BIN)/mypy
	@# As Windows sees it: a POSIX-only module (fcntl) imported outside a platform check fails here.
	$(BIN)/mypy --platform win32

test: system-deps install lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The unit tests against the lowest runtime dependencies pyproject.toml allows (uv's lowest-direct
# resolution: each declared lower bound, the newest of what they need in turn), so a lower bound
# that no longer works fails here rather than on a user's machine. Not run: the integration tests,
# the wheel builds and the check of the wheel configuration (it asks cibuildwheel, a dev tool),
# the benchmark smoke tests, and the tests of FastAPI and Litestar apps (FastAPI would pull a
# recent Starlette); the `test` dependency group has the rest.
LOWEST_VENV ?= .venv-lowest
LOWEST_SKIP := -m "not integration and not frameworks" --ignore=tests/docs/test_packaging.py \
	--ignore=tests/docs/test_wheels_config.py \
	--ignore=tests/benchmarks --ignore=tests/docs/test_readme.py \
	--ignore=tests/unit/hot_path/test_routes.py \
	--deselect tests/unit/web/test_gate.py::test_documented_fastapi_example

test-lowest: $(VENV)/.deps
	rm -rf $(LOWEST_VENV)
	$(BIN)/uv venv -q --python $(BIN)/python $(LOWEST_VENV)
	$(BIN)/uv pip compile -q --no-header --resolution lowest-direct \
		--python $(LOWEST_VENV)/bin/python pyproject.toml -o $(LOWEST_VENV)/lowest.txt
	$(BIN)/uv pip install -q --python $(LOWEST_VENV)/bin/python -c $(LOWEST_VENV)/lowest.txt \
		--group test .
	@grep -E "^(starlette|prometheus-client|psutil|jinja2|aiosmtplib|httpx)==" $(LOWEST_VENV)/lowest.txt
	$(LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider $(LOWEST_SKIP) $(PYTEST_ARGS)

demo: install
	$(BIN)/asgi-monitor demo --host 127.0.0.1 --port 8000

bench: install $(VENV)/.bench-deps
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(LOWEST_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
