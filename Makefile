# Two commands do all the set-up on a fresh machine (Python >= 3.10, gcc, pip):
#   make demo   build everything, run the flagship example
#   make test   build everything, run the whole test suite (the model check included)
#   make verify the protocol's model, checked exhaustively by spin (full bounds)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=

CORE_SOURCES := $(wildcard cython_src/*.pyx cython_src/*.pxi cython_src/includes/* cython_src/hw/*.pyx cython_src/hw/uintr_hw.c cython_src/hw/*.h) uintr_loop/_core.pxd setup.py

.PHONY: all build test demo bench soak verify spin valgrind clean info

all: build

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "setuptools>=77" wheel "Cython>=3.0"
	$(PY) -m pip install -q --no-build-isolation -e ".[test]"
	touch $@

$(VENV)/.built: $(VENV)/.deps $(CORE_SOURCES)
	$(PY) setup.py -q build_ext --inplace
	touch $@

build: $(VENV)/.built

test: build spin
	$(PY) -m pytest $(PYTEST_ARGS)

demo: build
	$(PY) examples/offload_server.py --demo

# Under 5 minutes: every loop side by side (5 interleaved rounds), then the
# cross-process figures. Results, tables and plots go to benchmarks/results/.
bench: build
	$(PY) -m pip install -q --no-build-isolation -e ".[bench]"
	$(PY) benchmarks/run.py $(BENCH_ARGS)
	$(PY) benchmarks/xproc_latency.py
	$(PY) benchmarks/shim_overhead.py
	$(PY) benchmarks/preempt_latency.py
	$(PY) benchmarks/idle_wakeups.py --strace

# Not part of make test: 60 s on each base (about 2.5 minutes in all), every sender kind
# against every receiver state, every post counted; prints a table of exact counts.
SOAK_SECONDS ?= 60
soak: build
	$(PY) tests/soak.py --seconds $(SOAK_SECONDS)

# spin, the model checker, is a distribution package (Debian: spin); on a
# fresh machine it is installed here, as root, like the rest of the set-up.
spin:
	@command -v spin >/dev/null 2>&1 || { \
	  echo "make: installing spin (the model checker) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spin >/dev/null; } \
	  || { echo "make: spin is required: install Debian's spin package"; exit 1; }

# Every configuration and every broken core (about 30 s on 2 cores); make test
# runs the same searches (tests/test_model.py).
verify: spin
	$(PYTHON) cython_src/model/verify.py

# memcheck, strict: the core's C headers alone (tests/valgrind/core_harness.c)
# and a short run of the extension on both bases; prints the ERROR SUMMARY,
# lost bytes and fds left open of each, fails on anything not suppressed.
valgrind: build
	$(PY) tests/_memcheck.py

info: build
	$(PY) -m uintr_loop info

clean:
	rm -rf build $(VENV) *.egg-info cython_src/*.c uintr_loop/*.so
