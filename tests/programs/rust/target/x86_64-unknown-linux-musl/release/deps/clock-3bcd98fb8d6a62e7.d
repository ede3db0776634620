/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/clock-3bcd98fb8d6a62e7.d: src/bin/clock.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libclock-3bcd98fb8d6a62e7.rmeta: src/bin/clock.rs Cargo.toml

src/bin/clock.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
