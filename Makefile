# The README's two commands: `make demo` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages the integration tests use (promtool, Prometheus, Alertmanager, Chromium, Redis, wrk).
APT_PACKAGES := prometheus prometheus-alertmanager chromium redis-server wrk valgrind

.PHONY: demo test lint install system-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Dependencies change rarely: reinstall them only when pyproject.toml changes.
$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q ".[dev,demo]"
	touch $@

# The package itself is reinstalled (not editable) on every run, so the tests exercise what a
# wheel ships, templates included, with the hot path compiled by mypyc as the speed budget
# assumes (tests/test_packaging.py checks the default pure-Python wheel too).
install: $(VENV)/.deps
	HATCH_BUILD_HOOK_ENABLE_MYPYC=1 $(BIN)/pip install -q --no-deps --force-reinstall .
	@# hatch-mypyc leaves its build products in the source tree; a checkout must stay pure Python
	@# (a stale .so would shadow edits to the .py files, and would leak into a default wheel).
	rm -f asgi_monitor/*.so *__mypyc*.so

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

test: system-deps install lint
	$(BIN)/pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/asgi-monitor demo --host 127.0.0.1 --port 8000

bench: install
	$(BIN)/pip install -q ".[bench]"
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
