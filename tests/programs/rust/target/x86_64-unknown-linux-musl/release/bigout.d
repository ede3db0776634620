/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/bigout: /work/main/tests/programs/rust/src/bin/bigout.rs
