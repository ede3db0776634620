/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/connect-0b17c312412ff2db.d: src/bin/connect.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/connect-0b17c312412ff2db: src/bin/connect.rs

src/bin/connect.rs:
