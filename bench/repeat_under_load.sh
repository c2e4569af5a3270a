#!/usr/bin/env bash
# Runs test modules N times in a row with every core kept busy by CPU burners beside them: the check
# that tests waiting on processes hold on a loaded machine (issue 17). Not part of `make test`.
#   bench/repeat_under_load.sh [RUNS] [PYTEST TARGETS...]   (default: 20 tests/report tests/cli)
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(tests/report tests/cli)
burners=()
for _ in $(seq "$(nproc)"); do python3 -c "while True: pass" & burners+=($!); done
trap 'kill "${burners[@]}" 2>/dev/null' EXIT
log=$(mktemp -d)
passed=0
for i in $(seq "$runs"); do
  start=$(date +%s)
  if .venv/bin/python -m pytest -q -p no:cacheprovider "${targets[@]}" >"$log/run$i.log" 2>&1; then
    passed=$((passed + 1)); result=pass
  else
    result="FAIL (log: $log/run$i.log)"
  fi
  echo "run $i: $result in $(( $(date +%s) - start )) s, load $(cut -d' ' -f1-3 /proc/loadavg); $(tail -1 "$log/run$i.log")"
done
echo "passed $passed of $runs"
[ "$passed" -eq "$runs" ]
