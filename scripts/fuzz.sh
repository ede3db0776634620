#!/usr/bin/env bash
# A bounded fuzz run of the host's request decoder and offload server:
# `./scripts/fuzz.sh [SECONDS]` (default 60). It starts from the corpus kept
# in fuzz/corpus and writes what it finds new to a scratch directory, so the
# kept corpus changes only when someone merges into it on purpose:
#   cd fuzz && cargo fuzz run -s none offload_server corpus/offload_server
#   cargo fuzz cmin -s none offload_server corpus/offload_server
# A crash fails the run and leaves its input in fuzz/artifacts.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}

# Stable Rust has no sanitizers, so the target runs with libFuzzer's
# coverage alone (-s none); the monitor's unsafe code is small and checked.
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# The harness's mount lives here too, so nothing it made outlives the run.
mkdir "$scratch/tmp" "$scratch/new"
export TMPDIR="$scratch/tmp"
# An input that makes the server wait 10 s is a failure (libFuzzer keeps it).
# (The fuzzer's status is kept apart from grep's: a crash must fail this.)
set +e
cargo fuzz run -s none offload_server "$scratch/new" corpus/offload_server -- \
  -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2>&1 |
  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added|INFO: +[0-9]+ files found)|panicked|ERROR|SUMMARY'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "fuzz: the target failed (status $status); the input is in fuzz/artifacts" >&2
fi
exit "$status"
