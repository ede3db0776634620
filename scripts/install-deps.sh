#!/usr/bin/env bash
# Installs what atoll needs on a fresh Debian/Ubuntu machine: C and Go
# toolchains for the test programs (and C++ for libFuzzer), a static busybox
# to run, a real OCI registry for the image tests, and the pinned Rust
# toolchain with the kernel's and the test programs' targets.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Every tool a test needs is here (tests/common's `require` fails a CI run
# that lacks one). libc6-dev: static glibc for gcc, which only recommends it.
# wrk: the bench's HTTP rows.
# mmdebstrap: a Debian root filesystem; skopeo and umoci: OCI images of it.
packages=(musl-tools gcc libc6-dev g++ make busybox-static util-linux docker-registry curl qemu-system-x86 gdb golang-go wrk python3 perl lua5.4 gawk sqlite3 mmdebstrap skopeo umoci)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null 2>&1; then
  echo "atoll needs rustup: https://rustup.rs" >&2
  exit 1
fi
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy \
  --target x86_64-unknown-none,x86_64-unknown-linux-musl >/dev/null

if [ ! -e /dev/kvm ]; then
  echo "note: /dev/kvm is missing: isles run under QEMU's TCG here (slower); the tests of atoll's own KVM monitor need it (they fail under CI=true)" >&2
fi
