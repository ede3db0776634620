/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/netecho: /work/main/tests/programs/rust/src/bin/netecho.rs
