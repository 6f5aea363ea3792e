# Two commands: `make run` (set up, then open the app on the sample data) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)
PORT ?= 8501
# Loopback by default; ADDRESS=0.0.0.0 serves the plant network (the app has no login of its own).
ADDRESS ?= 127.0.0.1

.PHONY: setup run test bench clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) --server.headless true

test: setup
	$(PY) -m pytest -q

# Runs every benchmark and rewrites its section of docs/benchmarks.md.
bench: setup
	$(PY) bench/bench_model.py --write-doc docs/benchmarks.md
	$(PY) bench/bench_timeagg.py --repeat 5 --write-doc docs/benchmarks.md
	$(PY) bench/bench_odbc_read.py --write-doc docs/benchmarks.md

clean:
	rm -rf $(VENV) data/sample
