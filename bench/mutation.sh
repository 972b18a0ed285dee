#!/usr/bin/env bash
# Mutation testing with mutmut 3, in a scratch copy of the repository (the working tree stays clean).
# Usage: bench/mutation.sh AREA [MAX_CHILDREN]   (heavy: run it alone, e.g. under `flock`)
#   safety:  the files and tests named in pyproject.toml [tool.mutmut]: mapping, command link, cab-joystick
#            layout, the configuration ranges and the profile's cross-checks.
#   journal: capture_node/episode/journal.py and capture_node/record/recovery.py against the journal, recovery and
#            damage tests (the kill -9 and disk-full suites spawn processes and mount file systems: too slow to
#            run per mutant; they run as a whole in the test suite).
# Writes every mutant's result to
# bench/results/mutation-AREA.txt and prints the counts per result; the score is killed / all mutants.
# KEEP=1 keeps the copy for `mutmut show NAME`. See docs/testing.md for the scores and the surviving mutants.
set -euo pipefail
area=${1:?area: safety or journal}
children=${2:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
case "$area" in
  safety) files=""; tests="" ;;
  journal)
    files='"capture_node/episode/journal.py", "capture_node/episode/journal_reader.py", "capture_node/record/recovery.py"'
    tests='"tests/episode/test_journal.py", "tests/record/test_recovery.py", "tests/episode/test_journal_damage.py", "tests/record/test_recorder.py"'
    ;;
  *) echo "unknown area $area (safety or journal)" >&2; exit 2 ;;
esac
work=$(mktemp -d /tmp/excap-mutation-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
tar -C "$repo" --exclude=.git --exclude=.venv --exclude=mutants --exclude='__pycache__' -cf - . | tar -C "$work" -xf -
cd "$work"
echo "scratch copy: $work"
# mutmut names modules by their path under a source folder: lay the copy out as the installed package
# (src/excap, src/excap/drivers, src/excap/schemas) so that its names are the ones the tests import.
mkdir src && mv capture_node src/excap && mv drivers src/excap/drivers && mv schemas src/excap/schemas
"$python" - "$files" "$tests" <<'PY'
import re, sys, tomllib
text = open("pyproject.toml").read()
settings = tomllib.loads(text).get("tool", {}).get("mutmut", {})
files = sys.argv[1] or ", ".join(f'"{f}"' for f in settings["only_mutate"])
tests = sys.argv[2] or ", ".join(f'"{t}"' for t in settings["pytest_add_cli_args_test_selection"])
for old, new in (("capture_node/", "src/excap/"), ("drivers/", "src/excap/drivers/"), ("schemas/", "src/excap/schemas/")):
    files = files.replace(f'"{old}', f'"{new}')
text = re.sub(r"\n\[tool\.mutmut\]\n(?:(?!\n\[).)*", "\n", text, flags=re.S)
text += f"""
[tool.mutmut]
source_paths = ["src"]
only_mutate = [{files}]
also_copy = ["examples", "launch"]
do_not_mutate_patterns = ["^\\\\s*log\\\\.(debug|info|warning|error|exception)\\\\("]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-o", "addopts="]
timeout_multiplier = 5.0
pytest_add_cli_args_test_selection = [{tests}]
"""
open("pyproject.toml", "w").write(text)
PY
export EXCAP_FUZZ_SCALE=${EXCAP_FUZZ_SCALE:-0.1} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
started=$(date +%s)
"$python" -m mutmut run --max-children "$children" >"$work/mutmut.log" 2>&1 || true
tail -c 600 "$work/mutmut.log"
mkdir -p "$repo/bench/results"
"$python" -m mutmut results --all true 2>/dev/null >"$repo/bench/results/mutation-$area.txt" || true
echo "mutmut took $(( $(date +%s) - started )) s"
awk '{print $NF}' "$repo/bench/results/mutation-$area.txt" | sort | uniq -c
