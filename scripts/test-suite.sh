#!/usr/bin/env bash
# `make test`: the suite as two pytest runs side by side. The engine tests run in order, as a
# serial run has them (each starts stacks, binds ports and times replicas, so two at once
# would fight over the cores); every other test runs beside them in a second process and its
# report follows the engine run's. A serial run left a core idle much of the time (load
# about 1.3 on 2 cores). TEST_SPLIT=0 runs one serial pytest instead.
# pytest-xdist's `--dist loadgroup` would do this, but with pytest 9 its group marks no longer
# reach the node ids it schedules by (xdist 3.8.0 sets Item._nodeid; pytest 9 reads Item._id).
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
if [[ "${TEST_SPLIT:-1}" == 0 ]]; then
  exec "$py" -m pytest "$@"
fi
others_log="$(mktemp)"
# Separate port lanes (tests/support/project.py): neither run's stacks take the other's ports.
TEST_PORT_LANE=1 "$py" -m pytest -m "not engine" -p no:cacheprovider "$@" >"$others_log" 2>&1 &
others=$!
trap 'kill "$others" 2>/dev/null; rm -f "$others_log"' EXIT
TEST_PORT_LANE=0 "$py" -m pytest -m engine "$@"
engine=$?
wait "$others"
rest=$?
echo
echo "== the other tests (unit, mocks, policy, gitops), run beside the engine tests: exit $rest"
cat "$others_log"
echo "== engine tests: exit $engine; the other tests: exit $rest"
# Any non-zero status fails, pytest's 5 ("no tests collected") included.
(( engine == 0 && rest == 0 ))
