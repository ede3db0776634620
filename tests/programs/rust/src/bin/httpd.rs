//! A tiny HTTP/1.0 server: `httpd PORT COUNT` answers COUNT requests on
//! 0.0.0.0:PORT with a fixed page, then exits.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(1);
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    println!("serving on {port}");
    for served in 0..count {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        // A client may hang up at any time: that's its business.
        if reader.read_line(&mut request_line).is_err() {
            continue;
        }
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => break,
                Ok(_) if header == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let body = format!("hello from an isle: request {served} for {path}\n");
        let mut stream = reader.into_inner();
        let _ = write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
}
