/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/httpd-d48a352c4b2733f4.d: src/bin/httpd.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/httpd-d48a352c4b2733f4: src/bin/httpd.rs

src/bin/httpd.rs:
