/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/threads: /work/main/tests/programs/rust/src/bin/threads.rs
