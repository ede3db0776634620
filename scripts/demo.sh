#!/usr/bin/env bash
# Fresh machine to a real program in an isle: installs what is needed, builds
# atoll, and runs static busybox in an isle.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release -p atoll-cli
atoll=target/x86_64-unknown-linux-gnu/release/atoll
echo "+ atoll run /bin/busybox echo Hello from an isle"
"$atoll" run /bin/busybox echo Hello from an isle
echo "+ seq 1 100000 | atoll run /bin/busybox wc -l"
seq 1 100000 | "$atoll" run /bin/busybox wc -l
