# Two commands do all the set-up on a fresh machine (Python >= 3.11, gcc, pip):
#   make demo   build everything, run the flagship example
#   make test   build everything, run the whole test suite (the model check included)
#   make verify the protocol's model, checked exhaustively by spin (full bounds)
#   make test-pythons   make test on Python 3.14 and 3.15 too, in a private root (pyroot)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=
PIP_INSTALL_ARGS ?=

CORE_SOURCES := $(wildcard cython_src/*.pyx cython_src/interp/*.c cython_src/core/*.pxi cython_src/hw/*.pxi cython_src/includes/* cython_src/hw/*.pyx cython_src/hw/uintr_hw.c cython_src/hw/*.h) uintr_loop/_core.pxd setup.py

# The newer Pythons come from a private Debian root made by the project's
# pyroot tool (shared/tools/pyroot beside the repository; `pyroot setup` is
# idempotent, about a minute the first time, with nothing of the machine's
# own system changed). Each Python gets its own venv in the work tree.
PYROOT  ?= ../shared/tools/pyroot
PYTHONS ?= 3.14 3.15

.PHONY: all build testcore test test-pythons demo bench bench-here soak verify spin valgrind clean info docs wheel sdist changelog hw-emu python-ft test-ft bench-ft

all: build

$(VENV)/.deps: pyproject.toml tests/_servers_install.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "setuptools>=77" wheel "Cython>=3.1"
	$(PY) -m pip install -q $(PIP_INSTALL_ARGS) --no-build-isolation -e ".[test]"
	$(PY) tests/_servers_install.py
	@# mypy for tests/test_typing.py, wheels only: its newest releases need a Rust build where
	@# no wheel exists (3.13t), and the check is the same on every Python that has one
	$(PY) -m pip install -q --only-binary :all: "mypy>=1.10" >/dev/null 2>&1 || \
	  echo "make: mypy has no wheel for $(PYTHON) here: tests/test_typing.py will skip"
	touch $@

$(VENV)/.built: $(VENV)/.deps $(CORE_SOURCES)
	$(PY) setup.py -q build_ext --inplace
	touch $@

TESTCORE_SOURCES := $(wildcard cython_src/interp/*.c tests/_testcore/*.pyx tests/_testcore/*.pxd tests/_testcore/*.h tests/_testcore/build.py)

# The test-only extension (tests/_testcore: the fake hardware backend,
# UpidCell, half_post), built in place beside the tests; pip install . never
# builds it, so the product ships none of it.
$(VENV)/.testcore: $(VENV)/.built $(TESTCORE_SOURCES)
	$(PY) tests/_testcore/build.py
	touch $@

build: $(VENV)/.built
testcore: $(VENV)/.testcore

test: build testcore spin
	$(PY) -m pytest $(PYTEST_ARGS)

# Each Python in its own venv (.venv-3.14, ...), one after the other; the
# first failure stops and fails the target.
test-pythons:
	bash $(PYROOT) setup
	set -e; for v in $(PYTHONS); do \
	  echo "make: test on Python $$v (pyroot)"; \
	  bash $(PYROOT) run make test PYTHON=python$$v VENV=.venv-$$v PYTEST_ARGS='$(PYTEST_ARGS)'; \
	done

demo: build
	$(PY) examples/offload_server.py --demo

# make bench: every loop against every peer (benchmarks/run.py: interleaved rounds,
# medians, CPU per op), on this Python and on 3.14 through the pyroot, then the
# cross-process figures; about 15 minutes on 2 cores. Tables, JSON and plots go to
# benchmarks/results/. The peers come from PyPI into the benchmark's own
# environment (BENCH_VENV), never into the package's; a peer with no wheel for a
# Python is left out and named in that Python's tables.
BENCH_VENV  ?= .venv-bench
BENCH_PEERS ?= uvloop rloop rsloop zuvloop anyio matplotlib
PYROOT      ?= ../shared/tools/pyroot
BENCH_PY314 ?= python3.14
bench: bench-here
	$(PYROOT) setup >/dev/null
	$(PYROOT) run $(MAKE) --no-print-directory bench-here PYTHON=$(BENCH_PY314) VENV=.venv-3.14 \
	  BENCH_VENV=.venv-bench-3.14 BENCH_ARGS="$(BENCH_ARGS)"
	$(PY) benchmarks/xproc_latency.py
	$(PY) benchmarks/shim_overhead.py
	$(PY) benchmarks/preempt_latency.py
	$(PY) benchmarks/metrics_overhead.py
	$(PY) benchmarks/idle_wakeups.py --strace

bench-here: build testcore $(BENCH_VENV)/.deps
	$(BENCH_VENV)/bin/python benchmarks/run.py $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python benchmarks/roundtrip_split.py

$(BENCH_VENV)/.deps:
	$(PYTHON) -m venv $(BENCH_VENV)
	@for p in $(BENCH_PEERS); do $(BENCH_VENV)/bin/python -m pip install -q --only-binary :all: $$p \
	  >/dev/null 2>&1 || echo "make: $$p has no wheel for $(PYTHON) here: left out of the benchmarks"; done
	touch $@

# Not part of make test: 60 s on each base (about 2.5 minutes in all), every sender kind
# against every receiver state, every post counted; prints a table of exact counts.
SOAK_SECONDS ?= 60
soak: build testcore
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

# The backend's instructions on an emulated Sapphire Rapids (Bochs 3.0, two
# CPUs): builds Bochs and the level-2 UINTR kernel once (minutes, cached outside
# the repository in $$UINTR_LOOP_HW_EMU_CACHE or ~/.cache/uintr_loop/hw-emu),
# then boots the freestanding tests (no Linux), the kernel with its selftest, with
# the backend harness, with Intel's selftests (when the cache has their sources)
# and with CPython and the package (about 75 s in all), and prints one table of
# checks. make test never builds them; tests/test_hardware_emulated.py runs the
# boots when the cache has them and skips, naming what it probed, when not.
hw-emu:
	$(PYTHON) tests/hw_emu/hw_emu.py

info: build
	$(PY) -m uintr_loop info

# The documentation site (Sphinx + MyST, docs/): warnings are errors, so a
# broken link between pages or a docstring that does not render fails it.
# Output in docs/_build/html.
# The docs extra's requirements, read from the installed metadata: pip
# install -e ".[docs]" would rebuild the extensions for nothing.
$(VENV)/.docs-deps: $(VENV)/.deps
	$(PY) -c 'import importlib.metadata as m; print("\n".join(r.split(";")[0] for r in m.requires("uintr_loop") if "extra == \"docs\"" in r))' > $(VENV)/docs-requirements.txt
	$(PY) -m pip install -q -r $(VENV)/docs-requirements.txt
	touch $@

docs: build $(VENV)/.docs-deps
	$(PY) -m sphinx -b html -W --keep-going -q -E docs docs/_build/html
	@echo "make docs: docs/_build/html/index.html"

# A manylinux wheel in dist/ (pip wheel, then auditwheel repair), then a
# smoke test: installed into a fresh venv and imported with no C compiler on
# PATH. Build tools go into their own venv, $(WHEEL_VENV).
WHEEL_VENV ?= build/wheel-venv
# make sdist: the source distribution in dist/, installed (pip builds it) into
# a fresh venv and smoke-tested from outside the checkout, as make wheel's.
SDIST_VENV ?= build/sdist-venv
wheel:
	bash .ci/wheel.sh "$(PYTHON)" "$(WHEEL_VENV)"

sdist:
	bash .ci/sdist.sh "$(PYTHON)" "$(SDIST_VENV)"

# At a release: changes/*.md into CHANGELOG.md (docs/development/changelog.md)
changelog:
	@test -n "$(VERSION)" || { echo "make changelog VERSION=x.y.z"; exit 1; }
	$(PYTHON) docs/_ext/changelog.py --version "$(VERSION)"

# Free-threaded CPython 3.13t (configure --disable-gil): .ci/python-ft builds it once into the
# user's cache, outside the repository (about 10 minutes on 2 cores; instant once cached; apt-get
# for the source and missing build dependencies, like `make spin`). test-ft runs the whole suite
# on it with the GIL off: the asyncio base; uvloop's rows are skipped with the reason probed
# (tests/_support.py) where uvloop cannot run there. bench-ft: benchmarks/freethreaded.py.
VENV_FT ?= .venv-3.13t

python-ft:
	@nice -n 10 .ci/python-ft >/dev/null

# --prefer-binary: the newest hypothesis ships compiled wheels for the GIL builds only (its
# sdist needs maturin); its last pure-Python wheel installs on 3.13t. uvloop has no 3.13t
# wheel at all and is built from its sdist (a few minutes, once).
FT_MAKE = $(MAKE) PYTHON="$$(.ci/python-ft)" VENV=$(VENV_FT) PIP_INSTALL_ARGS=--prefer-binary

test-ft: python-ft
	$(FT_MAKE) test

bench-ft: python-ft
	$(FT_MAKE) build
	PYTHON_GIL=0 $(VENV_FT)/bin/python benchmarks/freethreaded.py $(BENCH_ARGS)

clean:
	rm -rf build dist $(VENV) $(VENV_FT) $(BENCH_VENV) $(foreach v,$(PYTHONS),.venv-$(v)) *.egg-info cython_src/*.c uintr_loop/*.so tests/_testcore/*.so tests/_testcore/_*.c docs/_build docs/_generated
