#!/usr/bin/env bash
# make sdist: the source distribution of uintr_loop in dist/, then proof that
# it builds: pip installs it into a fresh venv (its own isolated build, with
# setuptools and Cython from the index, as a user's pip would) and the wheel's
# smoke test runs against the result, from outside the checkout.
#   .ci/sdist.sh PYTHON BUILD_VENV
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3}
TOOLS=${2:-build/sdist-venv}
SMOKE=build/sdist-smoke

if [ ! -x "$TOOLS/bin/pyproject-build" ]; then
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q --upgrade pip
  "$TOOLS/bin/python" -m pip install -q build
fi

mkdir -p dist
rm -f dist/uintr_loop-*.tar.gz
"$TOOLS/bin/pyproject-build" --sdist --outdir dist .
sdist=$(ls dist/uintr_loop-*.tar.gz)

rm -rf "$SMOKE"
"$PYTHON" -m venv "$SMOKE"
SMOKE_ABS=$(cd "$SMOKE" && pwd)
SDIST_ABS=$(cd "$(dirname "$sdist")" && pwd)/$(basename "$sdist")
SCRIPT=$(pwd)/.ci/wheel_smoke.py
(
  cd "$SMOKE_ABS"          # away from the checkout: build and import from the sdist alone
  "$SMOKE_ABS/bin/python" -m pip install -q "$SDIST_ABS"
  env -i HOME="$HOME" PATH="$SMOKE_ABS/bin" python "$SCRIPT"
)
echo "make sdist: $sdist ($(du -k "$sdist" | cut -f1) KiB), built and run from a fresh venv"
