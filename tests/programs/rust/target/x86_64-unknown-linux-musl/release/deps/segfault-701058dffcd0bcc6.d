/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/segfault-701058dffcd0bcc6.d: src/bin/segfault.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libsegfault-701058dffcd0bcc6.rmeta: src/bin/segfault.rs Cargo.toml

src/bin/segfault.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
