/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/alloc: /work/main/tests/programs/rust/src/bin/alloc.rs
