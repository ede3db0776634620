/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/threads-d9db9866b075d849.d: src/bin/threads.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libthreads-d9db9866b075d849.rmeta: src/bin/threads.rs Cargo.toml

src/bin/threads.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
