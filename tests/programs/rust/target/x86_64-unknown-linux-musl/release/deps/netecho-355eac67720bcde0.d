/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/netecho-355eac67720bcde0.d: src/bin/netecho.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/netecho-355eac67720bcde0: src/bin/netecho.rs

src/bin/netecho.rs:
