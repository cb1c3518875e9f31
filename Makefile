# Two commands do all the set-up on a fresh machine (Python >= 3.10, gcc, pip):
#   make demo   build everything, run the flagship example
#   make test   build everything, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=

CORE_SOURCES := $(wildcard cython_src/*.pyx cython_src/*.pxi cython_src/includes/* cython_src/hw/*.pyx cython_src/hw/uintr_hw.c cython_src/hw/*.h) uintr_loop/_core.pxd setup.py

.PHONY: all build test demo bench clean info valgrind

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

test: build
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

# memcheck, strict: the core's C headers alone (tests/valgrind/core_harness.c)
# and a short run of the extension on both bases; prints the ERROR SUMMARY,
# lost bytes and fds left open of each, fails on anything not suppressed.
valgrind: build
	$(PY) tests/_memcheck.py

info: build
	$(PY) -m uintr_loop info

clean:
	rm -rf build $(VENV) *.egg-info cython_src/*.c uintr_loop/*.so
