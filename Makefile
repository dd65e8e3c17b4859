# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv on first use and reuses it afterwards.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check --quiet

.PHONY: demo test lint typecheck pytest docs bench model mcp-servers clean

$(VENV)/.base:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	@touch $@

# The demo needs agentkit with the offline model runtime.
$(VENV)/.demo: $(VENV)/.base pyproject.toml
	$(PIP) install -e ".[local]"
	@touch $@

# Tests need everything the demo needs plus the dev tools.
$(VENV)/.dev: $(VENV)/.base pyproject.toml
	$(PIP) install -e ".[local,dev,postgres,mcp,otel,pricing,evals,finetune,durable]"
	@touch $@ $(VENV)/.demo

# The offline model (98 MB) is cached per user (~/.cache/agentkit or $$AGENTKIT_HOME).
model: $(VENV)/.demo
	$(PY) -m agentkit models pull smollm2-135m
	$(PY) -m agentkit models pull e5-small
	$(PY) -m agentkit models pull e5-small

demo: $(VENV)/.demo
	@if [ -z "$$OPENAI_API_KEY" ]; then $(PY) -m agentkit models pull smollm2-135m; fi
	$(PY) examples/weather_bot.py

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check agentkit tests examples tools

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy agentkit

docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

# MCP servers written by others, for tests/test_mcp_*.py: npm packages pinned by the
# lockfile in tests/npm, installed once (npm ci only when they are missing).
MCP_SERVERS := tests/npm/node_modules/@modelcontextprotocol/server-everything/package.json
$(MCP_SERVERS): tests/npm/package.json tests/npm/package-lock.json
	cd tests/npm && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

mcp-servers: $(MCP_SERVERS)

pytest: $(VENV)/.dev model mcp-servers
	$(VENV)/bin/pytest -q

test: lint typecheck docs pytest

bench: $(VENV)/.dev
	$(PY) tools/bench/run.py

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache tests/npm/node_modules
