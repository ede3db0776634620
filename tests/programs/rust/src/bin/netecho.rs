//! TCP echo server and clients in one process, then a UDP exchange:
//! `netecho PORT` uses PORT (TCP) and PORT+1, PORT+2 (UDP) on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18080);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    println!(
        "listening on {}",
        listener.local_addr().expect("local address").port()
    );
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buffer = [0u8; 64];
            let read = stream.read(&mut buffer).expect("server read");
            stream.write_all(&buffer[..read]).expect("server write");
        }
    });
    for index in 0..3 {
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        client
            .write_all(format!("hello {index}").as_bytes())
            .expect("client write");
        let mut buffer = [0u8; 64];
        let read = client.read(&mut buffer).expect("client read");
        println!("echo: {}", String::from_utf8_lossy(&buffer[..read]));
    }
    server.join().expect("server thread");
    let a = UdpSocket::bind(("127.0.0.1", port + 1)).expect("udp bind a");
    let b = UdpSocket::bind(("127.0.0.1", port + 2)).expect("udp bind b");
    b.send_to(b"udp ping", ("127.0.0.1", port + 1))
        .expect("udp send");
    let mut buffer = [0u8; 32];
    let (read, from) = a.recv_from(&mut buffer).expect("udp receive");
    println!(
        "udp: {} from port {}",
        String::from_utf8_lossy(&buffer[..read]),
        from.port()
    );
}
