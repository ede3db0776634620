/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/fsops-441d88891c78b1cb.d: src/bin/fsops.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/fsops-441d88891c78b1cb: src/bin/fsops.rs

src/bin/fsops.rs:
