#!/usr/bin/env bash
# Runs every test: the xunit suite (C# layer) through `dotnet test`, the Expecto suite (F# layer)
# as its own program, and the package consumer test (tests/consumer/run.sh). Ends with one line,
# "N passed, N failed", totalling all three; exits non-zero if any failed or did not report.
set -uo pipefail
cd "$(dirname "$0")"

configuration="${CONFIGURATION:-Release}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

strip() { sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g'; }

dotnet build Shm.sln -c "$configuration" --nologo -v quiet || { echo "0 passed, 1 failed"; exit 1; }

# A test host that hangs is dumped, killed and named after 10 minutes (the longest test takes about 3).
dotnet test tests/Shm.Interop.Tests -c "$configuration" --no-build --nologo \
    --blame-hang-timeout 10m --blame-hang-dump-type mini 2>&1 | tee "$logs/xunit.log"
xunit_status=${PIPESTATUS[0]}

# The Expecto program has its own hang guard: a test running over 5 minutes is named and the run ends (124).
dotnet run --project tests/Shm.Fun.Tests -c "$configuration" --no-build -- --colours 0 2>&1 | tee "$logs/expecto.log"
expecto_status=${PIPESTATUS[0]}

# The consumer test: the packages and the tool, restored by a project outside the solution.
tests/consumer/run.sh 2>&1 | tee "$logs/consumer.log"
consumer_status=${PIPESTATUS[0]}

# xunit:   "Passed!  - Failed:     0, Passed:    29, Skipped:     0, Total:    29, ..."
# Expecto: "EXPECTO! 24 tests run in ... - 24 passed, 0 ignored, 0 failed, 0 errored. Success!"
read -r x_failed x_passed < <(strip < "$logs/xunit.log" |
    sed -nE 's/.*Failed: *([0-9]+), Passed: *([0-9]+),.*/\1 \2/p' | tail -1)
read -r e_passed e_failed e_errored < <(strip < "$logs/expecto.log" |
    sed -nE 's/.* ([0-9]+) passed, [0-9]+ ignored, ([0-9]+) failed, ([0-9]+) errored.*/\1 \2 \3/p' | tail -1)
# Consumer: "consumer: 3 passed, 0 failed"
read -r c_passed c_failed < <(sed -nE 's/^consumer: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$logs/consumer.log" | tail -1)

# The fork stress test leaves its figures beside the test assembly.
cat "tests/Shm.Interop.Tests/bin/$configuration/net10.0/fork-stress.txt" 2>/dev/null

passed=$(( ${x_passed:-0} + ${e_passed:-0} + ${c_passed:-0} ))
failed=$(( ${x_failed:-0} + ${e_failed:-0} + ${e_errored:-0} + ${c_failed:-0} ))
# A suite that crashed or never reported counts as one failure.
if [[ -z "${x_passed:-}" || ( $xunit_status -ne 0 && ${x_failed:-0} -eq 0 ) ]]; then failed=$((failed + 1)); fi
if [[ -z "${e_passed:-}" || ( $expecto_status -ne 0 && ${e_failed:-0} -eq 0 && ${e_errored:-0} -eq 0 ) ]]; then failed=$((failed + 1)); fi
if [[ -z "${c_passed:-}" || ( $consumer_status -ne 0 && ${c_failed:-0} -eq 0 ) ]]; then failed=$((failed + 1)); fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
