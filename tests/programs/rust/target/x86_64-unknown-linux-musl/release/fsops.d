/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/fsops: /work/main/tests/programs/rust/src/bin/fsops.rs
