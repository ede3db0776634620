/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/exitcode-c133c1e10b69f1b3.d: src/bin/exitcode.rs

/work/main/tests/programs/rust/target/x86_64-unknown-linux-musl/release/deps/exitcode-c133c1e10b69f1b3: src/bin/exitcode.rs

src/bin/exitcode.rs:
