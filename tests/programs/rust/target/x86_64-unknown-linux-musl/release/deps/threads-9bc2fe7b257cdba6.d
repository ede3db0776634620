/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/threads-9bc2fe7b257cdba6.d: src/bin/threads.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/threads-9bc2fe7b257cdba6: src/bin/threads.rs

src/bin/threads.rs:
