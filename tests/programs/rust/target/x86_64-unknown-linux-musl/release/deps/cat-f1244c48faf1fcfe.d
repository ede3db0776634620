/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/cat-f1244c48faf1fcfe.d: src/bin/cat.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libcat-f1244c48faf1fcfe.rmeta: src/bin/cat.rs Cargo.toml

src/bin/cat.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
