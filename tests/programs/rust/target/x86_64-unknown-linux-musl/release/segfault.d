/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/segfault: /work/main/tests/programs/rust/src/bin/segfault.rs
