#!/usr/bin/env bash
# Build the documentation: API reference, user guide and the gallery, with
# every example executed and every Sphinx warning treated as an error.
#
# Usage (from anywhere):   bash docs/build.sh [extra sphinx options]
# Needs:                   python -m pip install -e ".[docs]"
# Output:                  docs/_build/html/index.html
#
# Environment:
#   SKDIFFCLUST_DOCS_NO_GALLERY=1  skip running the examples (checks the text only)
#   OMP_NUM_THREADS                threads of torch/BLAS per process (default 1 here:
#                                  the examples are timed for small shared machines)
set -euo pipefail
cd "$(dirname "$0")/.."

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MPLBACKEND=agg

# A fresh build: stale generated pages or cached example outputs must not hide
# a broken docstring or example.
rm -rf docs/_build docs/auto_examples docs/generated docs/sg_execution_times.rst

start=$(date +%s)
python -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
echo "docs built in $(( $(date +%s) - start )) s: docs/_build/html/index.html"
