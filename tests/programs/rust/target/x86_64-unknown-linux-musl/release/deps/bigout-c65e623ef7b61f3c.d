/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/bigout-c65e623ef7b61f3c.d: src/bin/bigout.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/bigout-c65e623ef7b61f3c: src/bin/bigout.rs

src/bin/bigout.rs:
