/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/hello-bc2584a329d8455a.d: src/bin/hello.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libhello-bc2584a329d8455a.rmeta: src/bin/hello.rs Cargo.toml

src/bin/hello.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
