#!/usr/bin/env bash
# Fresh machine to every test: installs what is needed, checks formatting and
# lints (workspace and kernel), runs the kernel's unit tests on the host,
# then all tests, which boot real isles, and a bounded fuzz run of the
# offload server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo fmt --all --check
(cd crates/kernel && cargo fmt --check)
(cd tests/programs/rust && cargo fmt --check)
(cd fuzz && cargo fmt --check)
cargo clippy --release --all-targets -- -D warnings
cargo clippy --release -p atoll-vmm --features fuzzing -- -D warnings
(cd crates/kernel && cargo clippy --release -- -D warnings)
(cd crates/kernel && cargo clippy --release --tests --target x86_64-unknown-linux-gnu -- -D warnings)
# The kernel's logic (mm, run and futex queues) on the host, with a fake arch.
(cd crates/kernel && cargo test --release --target x86_64-unknown-linux-gnu)
cargo test --release
# The isle tests again with every syscall trapping: same programs, same outputs.
ATOLL_NO_REWRITE=1 cargo test --release -p atoll-cli --tests
./scripts/fuzz.sh 60
