/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/clock: /work/main/tests/programs/rust/src/bin/clock.rs
