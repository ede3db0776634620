/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/cat-d46bfa65c41097b9.d: src/bin/cat.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/cat-d46bfa65c41097b9: src/bin/cat.rs

src/bin/cat.rs:
