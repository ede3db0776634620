/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/hello: /work/main/tests/programs/rust/src/bin/hello.rs
