/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/connect-06a76640d9456db8.d: src/bin/connect.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libconnect-06a76640d9456db8.rmeta: src/bin/connect.rs Cargo.toml

src/bin/connect.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
