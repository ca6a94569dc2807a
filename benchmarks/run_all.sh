#!/bin/sh
# Run every benchmark and keep its output and JSON figures in benchmarks/results/.
# Usage, from the repository root, after `pip install -e '.[test]'`:
#   sh benchmarks/run_all.sh [PYTHON]
set -eu
python=${1:-python}
out=benchmarks/results
mkdir -p "$out"
for name in overhead async memory load diff keys; do
    echo "== bench_$name" >&2
    "$python" "benchmarks/bench_$name.py" --json "$out/$name.json" | tee "$out/$name.md"
done
