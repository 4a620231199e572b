# Two commands: `make run` (install + serve on embedded defaults) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install run test bench lint clean stop

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# One gunicorn worker with threads: the model is loaded once, searches run in
# parallel. Milvus Lite runs as a local server beside it (started on demand),
# so `flask --app wsgi gallery add` works while this runs.
run: install
	@echo "Lookalike on http://$(HOST):$(PORT)  (model: $${LOOKALIKE_MODEL:-facebook/dinov2-small})"
	$(VENV)/bin/gunicorn --bind $(HOST):$(PORT) --workers 1 --threads 4 --timeout 120 \
		--no-control-socket --access-logfile - wsgi:app

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Benchmarks (minutes; quiet machine wanted). BENCH_ARGS="--milvus-server http://127.0.0.1:19530"
# adds a Milvus server; the report goes to BENCHMARKS.md and bench/out/report.json.
bench: install
	$(PY) -m bench --report BENCHMARKS.md $(BENCH_ARGS)

# Stop the local Milvus Lite server that `make run` or the CLI started.
stop: install
	$(VENV)/bin/flask --app wsgi milvus stop

clean:
	rm -rf $(VENV) .pytest_cache
