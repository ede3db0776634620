/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/bigout-d00cee15450ac9d3.d: src/bin/bigout.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libbigout-d00cee15450ac9d3.rmeta: src/bin/bigout.rs Cargo.toml

src/bin/bigout.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
