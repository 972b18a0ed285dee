#!/usr/bin/env bash
# Mutation testing of the safety path with mutmut 3: the files and tests named in pyproject.toml [tool.mutmut]
# (mapping, command link, cab-joystick layout, the configuration ranges and the profile's cross-checks), run in
# a scratch copy of the repository so the working tree stays clean. Heavy: run it alone, e.g.
#   flock /work/wt/heavy.lock bash bench/mutation_safety.sh [MAX_CHILDREN]
# Writes every mutant's result to bench/results/mutation-safety.txt and prints the counts per result;
# the score is killed / (killed + survived + timeout). See docs/testing.md.
set -euo pipefail
children=${1:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=/work/main/.venv/bin/python
work=$(mktemp -d /tmp/excap-mutation-safety-XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -C "$repo" --exclude=.git --exclude=.venv --exclude=mutants --exclude='__pycache__' -cf - . | tar -C "$work" -xf -
cd "$work"
export PYTHONPATH=$work EXCAP_FUZZ_SCALE=${EXCAP_FUZZ_SCALE:-0.1} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
started=$(date +%s)
"$python" -m mutmut run --max-children "$children" >"$work/mutmut.log" 2>&1 || true
tail -c 600 "$work/mutmut.log"
mkdir -p "$repo/bench/results"
"$python" -m mutmut results --all true 2>/dev/null >"$repo/bench/results/mutation-safety.txt" || true
echo "mutmut took $(( $(date +%s) - started )) s"
awk '{print $NF}' "$repo/bench/results/mutation-safety.txt" | sort | uniq -c
