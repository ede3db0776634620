/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/exitcode-de8046c2b3620f8d.d: src/bin/exitcode.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libexitcode-de8046c2b3620f8d.rmeta: src/bin/exitcode.rs Cargo.toml

src/bin/exitcode.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
