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

.PHONY: install run test bench lint clean stop

install: $(VENV)/.installed $(MILVUS_VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(MILVUS_VENV)/.installed:
	$(PYTHON) -m venv $(MILVUS_VENV)
	$(MILVUS_VENV)/bin/python -m pip install --quiet milvus==$(MILVUS_VERSION)
	touch $@

# gunicorn sized by gunicorn.conf.py (workers from cores and memory; each loads
# the model before it takes traffic). The local Milvus server runs beside it
# (started on demand, loopback only, data in instance/milvus), so
# `flask --app wsgi gallery add` works meanwhile.
run: install
	@echo "Lookalike on http://$(HOST):$(PORT)  (model: $${LOOKALIKE_MODEL:-facebook/dinov2-small})"
	$(VENV)/bin/gunicorn -c gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks (minutes; quiet machine wanted). BENCH_ARGS="--milvus-server http://127.0.0.1:19530"
# adds a Milvus server; the report goes to BENCHMARKS.md and bench/out/report.json.
bench: install
	$(PY) -m bench --report BENCHMARKS.md $(BENCH_ARGS)

# Stop the local Milvus server (or the Milvus Lite one) that `make run` or the CLI started.
stop: install
	$(VENV)/bin/flask --app wsgi milvus stop

clean:
	rm -rf $(VENV) $(MILVUS_VENV) .pytest_cache
