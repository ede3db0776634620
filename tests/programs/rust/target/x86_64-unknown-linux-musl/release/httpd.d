/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/httpd: /work/main/tests/programs/rust/src/bin/httpd.rs
