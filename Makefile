# Two commands: `make run` (install + serve on embedded defaults) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install run test bench lint clean stop

install: $(VENV)/.installed

# requirements-backends.txt: OpenVINO and ONNX Runtime (~300 MB), always installed;
# LOOKALIKE_ENCODER_BACKEND=auto uses them only where they measure faster than torch.
$(VENV)/.installed: requirements.txt requirements-backends.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-backends.txt
	touch $@

# gunicorn sized by gunicorn.conf.py (workers from cores and memory; each loads
# the model before it takes traffic). Milvus Lite runs as a local server beside
# it (started on demand), so `flask --app wsgi gallery add` works meanwhile.
run: install
	@echo "Lookalike on http://$(HOST):$(PORT)  (model: $${LOOKALIKE_MODEL:-facebook/dinov2-small})"
	$(VENV)/bin/gunicorn -c gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

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
