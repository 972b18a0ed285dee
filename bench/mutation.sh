#!/usr/bin/env bash
# Mutation testing of one area with mutmut 3, in a scratch copy of the repository (so the project's own
# [tool.mutmut] settings, if any, are left alone). Usage: bench/mutation.sh journal [MAX_CHILDREN]
#   journal: capture_node/episode/journal.py, journal_reader.py and capture_node/record/recovery.py against the
#            journal, recovery and damage tests (the kill -9 and disk-full suites spawn processes and mount file systems: too slow
#            to run per mutant; they are run as a whole in CI).
# Prints the counts; bench/mutation-AREA.txt lists the mutants not killed (`mutmut show NAME` in the scratch
# copy, kept with KEEP=1, shows each). Score: killed / all mutants.
set -euo pipefail
area=${1:?area: journal}
children=${2:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=/work/main/.venv/bin/python
mutmut="$(dirname "$python")/mutmut"
case "$area" in
  journal)
    files='"capture_node/episode/journal.py", "capture_node/episode/journal_reader.py", "capture_node/record/recovery.py"'
    tests='"tests/episode/test_journal.py", "tests/record/test_recovery.py", "tests/episode/test_journal_damage.py", "tests/record/test_recorder.py"'
    ;;
  *) echo "unknown area $area" >&2; exit 2 ;;
esac
work=$(mktemp -d /tmp/excap-mutation-XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT  # KEEP=1: keep the copy for `mutmut show`
tar -C "$repo" --exclude=.git --exclude=.venv --exclude=mutants --exclude='__pycache__' -cf - . | tar -C "$work" -xf -
cd "$work"
echo "scratch copy: $work"
# Replace any [tool.mutmut] table of the copy with this area's settings.
"$python" - "$files" "$tests" <<'PY'
import re, sys
text = open("pyproject.toml").read()
text = re.sub(r"\n\[tool\.mutmut\]\n(?:(?!\n\[).)*", "\n", text, flags=re.S)
text += f"""
[tool.mutmut]
source_paths = ["capture_node/"]
only_mutate = [{sys.argv[1]}]
also_copy = ["drivers/", "schemas/", "examples/"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-o", "addopts="]
timeout_multiplier = 5.0
pytest_add_cli_args_test_selection = [{sys.argv[2]}]
"""
open("pyproject.toml", "w").write(text)
PY
export EXCAP_FUZZ_SCALE=${EXCAP_FUZZ_SCALE:-0.1} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
"$mutmut" run --max-children "$children" >"/tmp/excap-mutation-$area.log" 2>&1 || true
tail -c 400 "/tmp/excap-mutation-$area.log"
"$mutmut" results --all true 2>/dev/null | awk '{print $NF}' | sort | uniq -c
"$mutmut" results 2>/dev/null > "$repo/bench/mutation-$area.txt"  # the mutants not killed
