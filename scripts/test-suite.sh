#!/usr/bin/env bash
# `make test`: the suite as two pytest runs side by side, split by folder into halves of
# about equal length (measured with --durations: tests/engine alone about 31 min; everything
# else, its gitops, policy-pack and benchmark runs on the engine included, about 26 min).
# Each half runs its modules in order, so at most two stacks are up at once. The second
# run's report follows the first's. A serial run left a core idle much of the time (load
# about 0.75 on 2 cores: the engine tests mostly wait on processes and health checks).
# TEST_SPLIT=0 runs one serial pytest instead.
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
TEST_PORT_LANE=1 "$py" -m pytest --ignore=tests/engine -p no:cacheprovider "$@" >"$others_log" 2>&1 &
others=$!
trap 'kill "$others" 2>/dev/null; rm -f "$others_log"' EXIT
TEST_PORT_LANE=0 "$py" -m pytest tests/engine "$@"
engine=$?
wait "$others"
rest=$?
echo
echo "== every test outside tests/engine (unit, mocks, policy, gitops, benchmarks), run beside tests/engine: exit $rest"
cat "$others_log"
echo "== tests/engine: exit $engine; the other tests: exit $rest"
# Any non-zero status fails, pytest's 5 ("no tests collected") included.
(( engine == 0 && rest == 0 ))
