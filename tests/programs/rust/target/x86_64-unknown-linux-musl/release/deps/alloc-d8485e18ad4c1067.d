/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/alloc-d8485e18ad4c1067.d: src/bin/alloc.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/alloc-d8485e18ad4c1067: src/bin/alloc.rs

src/bin/alloc.rs:
