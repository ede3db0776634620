/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/segfault-f88b58b56e65cf00.d: src/bin/segfault.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/segfault-f88b58b56e65cf00: src/bin/segfault.rs

src/bin/segfault.rs:
