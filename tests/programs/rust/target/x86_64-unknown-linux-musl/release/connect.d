/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/connect: /work/main/tests/programs/rust/src/bin/connect.rs
