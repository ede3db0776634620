/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/fsops-05c6f2a58c6c241a.d: src/bin/fsops.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libfsops-05c6f2a58c6c241a.rmeta: src/bin/fsops.rs Cargo.toml

src/bin/fsops.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
