//! Connects to 127.0.0.1:PORT and prints the first line it is sent.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: connect PORT");
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => {
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).expect("read");
            print!("got: {line}");
        }
        Err(error) => {
            eprintln!("connect: {error}");
            std::process::exit(2);
        }
    }
}
