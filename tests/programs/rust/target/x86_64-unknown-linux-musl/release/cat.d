/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/cat: /work/main/tests/programs/rust/src/bin/cat.rs
