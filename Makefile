# Two commands: `make run` (install + serve on embedded defaults) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install run test bench screenshot lint clean stop

install: $(VENV)/.installed

# pip -qq: errors only. Machines whose pip config names package folders that lack a
# project print a warning per package otherwise, which is nothing for a user to act on.
PIP = $(PY) -m pip install -qq --disable-pip-version-check

# requirements-backends.txt: OpenVINO and ONNX Runtime, always installed;
# LOOKALIKE_ENCODER_BACKEND=auto uses them only where they measure faster than torch.
$(VENV)/.installed: requirements.txt requirements-backends.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -r requirements.txt -r requirements-backends.txt
	touch $@

# gunicorn sized by gunicorn.conf.py (workers from cores and memory; each loads
# the model before it takes traffic). Milvus Lite runs as a local server beside
# it (started on demand), so `flask --app wsgi gallery add` works meanwhile.
run: install
	@echo "Lookalike on http://$(HOST):$(PORT)  (model: $${LOOKALIKE_MODEL:-the default in app/config.py})"
	$(VENV)/bin/gunicorn -c gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The whole tree, with the ruff pinned in requirements.txt (rules in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .

# Benchmarks (minutes; quiet machine wanted). BENCH_ARGS="--milvus-server http://127.0.0.1:19530"
# adds a Milvus server; the report goes to BENCHMARKS.md and bench/out/report.json.
bench: install
	$(PY) -m bench --report BENCHMARKS.md $(BENCH_ARGS)

# docs/screenshot.png from the real app: needs ../shared (MobileNetV2, Grocery) and chromium.
screenshot: install
	$(PY) -m docs.screenshot

# Stop the local Milvus Lite server that `make run` or the CLI started.
stop: install
	$(VENV)/bin/flask --app wsgi milvus stop

clean:
	rm -rf $(VENV) .pytest_cache
