#!/usr/bin/env bash
# Runs every cargo-fuzz target of Kennel -- the server's (server/fuzz) and
# the handler SDK's (handler-sdk/fuzz) -- for SECONDS each, one after the
# other, and prints one line per target: target, duration, executions and
# result. One fuzzer process at a time (libFuzzer's default: no -jobs or
# -workers), so it fits a shared machine.
#
# Usage: server/fuzz/run-all.sh [SECONDS] [TARGET...]
#   SECONDS  per target, default 60 (the long runs: 600)
#   TARGET   only these targets (names as in `cargo fuzz list`)
#
# Each target runs on the stable toolchain with `--sanitizer none`, with its
# corpus (corpus/<target>, not committed), its committed seeds
# (seeds/<target>) and its dictionary (dicts/<target>.dict) when there are
# any, and `-timeout=10` (an input that takes longer is a finding: the
# pattern matcher must never take exponential time). Findings are in
# <project>/artifacts/<target>/; full logs in server/fuzz/artifacts/run-all/.
# Exits non-zero if any target found something or failed to run.
set -u

seconds=${1:-60}
shift || true
only=("$@")

root=$(cd "$(dirname "$0")/../.." && pwd)
logs="$root/server/fuzz/artifacts/run-all"
mkdir -p "$logs"

wanted() {
    [ ${#only[@]} -eq 0 ] && return 0
    local t
    for t in "${only[@]}"; do
        [ "$t" = "$1" ] && return 0
    done
    return 1
}

status=0
printf '%-36s %9s %14s  %s\n' target duration executions result
for project in server/fuzz handler-sdk/fuzz; do
    dir="$root/$project"
    cd "$dir" || exit 2
    targets=$(cargo fuzz list) || exit 2
    todo=()
    for target in $targets; do
        wanted "$target" && todo+=("$target")
    done
    [ ${#todo[@]} -eq 0 ] && continue
    # Build first, so that the durations are fuzzing time only.
    if ! cargo fuzz build --sanitizer none >"$logs/build-${project%%/*}.log" 2>&1; then
        printf '%-36s %9s %14s  %s\n' "$project" - - "BUILD FAILED (see $logs/build-${project%%/*}.log)"
        status=1
        continue
    fi
    for target in "${todo[@]}"; do
        name="${project%%/*}/$target"
        log="$logs/${project%%/*}-$target.log"
        mkdir -p "corpus/$target"
        dirs=("corpus/$target")
        [ -d "seeds/$target" ] && dirs+=("seeds/$target")
        flags=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
        [ -f "dicts/$target.dict" ] && flags+=(-dict="dicts/$target.dict")
        start=$(date +%s)
        cargo fuzz run --sanitizer none "$target" "${dirs[@]}" -- "${flags[@]}" >"$log" 2>&1
        rc=$?
        took=$(($(date +%s) - start))
        execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
        if [ -z "$execs" ]; then
            # No final stats (the run ended on a finding): the last status line.
            execs=$(grep -aoE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
            execs="~${execs:-0}"
        fi
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        if [ "$rc" -eq 0 ]; then
            result=ok
        elif grep -aq 'ERROR: libFuzzer: timeout' "$log"; then
            result="TIMEOUT $artifact"
        elif [ -n "$artifact" ]; then
            result="CRASH $artifact"
        else
            result="FAILED (exit $rc, see $log)"
        fi
        [ "$rc" -eq 0 ] || status=1
        printf '%-36s %8ss %14s  %s\n' "$name" "$took" "$execs" "$result"
    done
done
echo "logs: $logs"
exit $status
