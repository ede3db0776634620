/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/hello-82919bd40c745159.d: src/bin/hello.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/hello-82919bd40c745159: src/bin/hello.rs

src/bin/hello.rs:
