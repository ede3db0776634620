/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/exitcode: /work/main/tests/programs/rust/src/bin/exitcode.rs
