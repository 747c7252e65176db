#!/usr/bin/env bash
# Build the wheel and check it from a fresh virtual environment holding torch and the wheel's
# core dependencies only (no extras): the CLI starts, the shipped models are listed, and one
# SpeX library spectrum of the embedded data is predicted with a shipped model, which proves
# the package data (pretrained models, recipes) is inside the wheel. Called by `make test`.
#   PYTHON     interpreter for the fresh environment (default python3)
#   BUILD_PY   interpreter that builds the wheel (default .venv/bin/python)
# The embedded data must already be fetched (`atmospec data fetch`); it lives in the user cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BUILD_PY=${BUILD_PY:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf dist
"$BUILD_PY" -m pip wheel --quiet --no-deps -w dist .
wheel=$(ls dist/atmospec-*.whl)
echo "built $wheel ($(du -h "$wheel" | cut -f1))"

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
before=$(du -sb "$site" | cut -f1)  # pip and setuptools of the bare environment
# The core install size: what torch (CPU) and the wheel with its core dependencies add to
# site-packages, as installed files. --no-compile leaves out the bytecode cache pip would
# otherwise precompile for every module (about 0.3 GB more); Python writes it on first import.
"$work/venv/bin/python" -m pip install --quiet --no-compile torch==2.13.0
"$work/venv/bin/python" -m pip install --quiet --no-compile "$wheel"
added=$(( $(du -sb "$site" | cut -f1) - before ))
budget=1200000000  # bytes: the 1.2 GB core install the README states
"$work/venv/bin/python" -c "print(f'core install: {$added / 1e9:.3f} GB added to site-packages (budget {$budget / 1e9:.1f} GB)')"
if [ "$added" -gt "$budget" ]; then
  echo "error: the core install ($added bytes) exceeds the ${budget}-byte budget in the README;" \
    "move the new dependency behind an extra or update the README's size section" >&2
  exit 1
fi

cd "$work"  # away from the source tree: only the installed wheel can be imported
venv/bin/python - <<'PY'
import importlib.util

import atmospec
from atmospec._optional import EXTRAS

assert "site-packages" in atmospec.__file__, atmospec.__file__
present = sorted(m for mods in EXTRAS.values() for m in mods if importlib.util.find_spec(m))
assert not present, f"optional dependencies installed by the core wheel: {present}"
PY
venv/bin/atmospec --help > /dev/null
venv/bin/atmospec models
venv/bin/atmospec predict --library --spt T5-T8 --snr-min 50 --limit 1 --no-plots --out pred
venv/bin/python - <<'PY'
import math

import pandas as pd

rows = pd.read_csv("pred/predictions.csv")
assert len(rows) == 1, rows
teff = float(rows["teff_median"].iloc[0])
# a T5-T8 dwarf: any physical estimate lies well inside 300-3000 K
assert math.isfinite(teff) and 300 < teff < 3000, teff
print(f"wheel check passed: {rows['source'].iloc[0]} Teff {teff:.0f} K")
PY
