/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/netecho-8f0eabe49b032c28.d: src/bin/netecho.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libnetecho-8f0eabe49b032c28.rmeta: src/bin/netecho.rs Cargo.toml

src/bin/netecho.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
