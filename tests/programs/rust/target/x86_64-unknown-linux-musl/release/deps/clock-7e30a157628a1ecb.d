/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/clock-7e30a157628a1ecb.d: src/bin/clock.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/clock-7e30a157628a1ecb: src/bin/clock.rs

src/bin/clock.rs:
