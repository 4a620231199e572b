# Two commands: `make run` (install + serve on embedded defaults) and `make test`.
VENV   ?= .venv
# The embedded default's Milvus standalone server (PyPI `milvus`), in a venv of its own.
MILVUS_VENV    ?= .venv-milvus
MILVUS_VERSION ?= 2.3.5
PYTHON ?= python3
PY      = $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install install-ray run test bench screenshot lint clean stop

install: $(VENV)/.installed $(MILVUS_VENV)/.installed

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

# Optional: distributed encoding with Ray (`--ray`) and Milvus bulk import (docs/scale.md).
install-ray: install
	$(PIP) -r requirements-ray.txt

$(MILVUS_VENV)/.installed:
	$(PYTHON) -m venv $(MILVUS_VENV)
	$(MILVUS_VENV)/bin/python -m pip install --quiet milvus==$(MILVUS_VERSION)
	touch $@

# gunicorn sized by gunicorn.conf.py (workers from cores and memory; each loads
# the model before it takes traffic). The local Milvus server runs beside it
# (started on demand, loopback only, data in instance/milvus), so
# `flask --app wsgi gallery add` works meanwhile.
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
# requirements-eval.txt: imagehash (pHash), the copy-detection suite's baseline; only here,
# since it pulls scipy (about 250 MB) that serving never needs.
bench: install
	$(PIP) -r requirements-eval.txt
	$(PY) -m bench --report BENCHMARKS.md $(BENCH_ARGS)

# docs/screenshot.png from the real app: needs ../shared (MobileNetV2, Grocery) and chromium.
screenshot: install
	$(PY) -m docs.screenshot

# Stop the local Milvus server (or the Milvus Lite one) that `make run` or the CLI started.
stop: install
	$(VENV)/bin/flask --app wsgi milvus stop

clean:
	rm -rf $(VENV) $(MILVUS_VENV) .pytest_cache
