/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/httpd-60ce779ebd62bd5a.d: src/bin/httpd.rs Cargo.toml

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/libhttpd-60ce779ebd62bd5a.rmeta: src/bin/httpd.rs Cargo.toml

src/bin/httpd.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
