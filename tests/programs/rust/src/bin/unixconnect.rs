//! `unixconnect PATH...` connects to each Unix socket path and prints the
//! first line it is sent, or why it could not connect.
//! `unixconnect --serve PATH` binds PATH, greets one client and exits.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        let path = args.get(1).expect("usage: unixconnect --serve PATH");
        let listener = UnixListener::bind(path).unwrap_or_else(|error| {
            eprintln!("bind {path}: {error}");
            std::process::exit(2);
        });
        let (mut stream, _) = listener.accept().expect("accept");
        stream.write_all(b"hello from the isle\n").expect("write");
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).expect("read");
        print!("served: {line}");
        return;
    }
    for path in &args {
        match UnixStream::connect(path) {
            Ok(stream) => {
                let mut line = String::new();
                BufReader::new(stream).read_line(&mut line).expect("read");
                print!("{path}: got {line}");
            }
            Err(error) => println!("{path}: refused ({:?})", error.kind()),
        }
    }
}
