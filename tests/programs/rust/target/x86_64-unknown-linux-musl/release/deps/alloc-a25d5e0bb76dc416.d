/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/alloc-a25d5e0bb76dc416.d: src/bin/alloc.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/liballoc-a25d5e0bb76dc416.rmeta: src/bin/alloc.rs Cargo.toml

src/bin/alloc.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
