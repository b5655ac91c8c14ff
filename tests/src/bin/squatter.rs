//! A program of another user of the machine, for the web session tests: it
//! listens on `127.0.0.1:PORT` and `[::1]:PORT` (whichever it can), and
//! for every request prints its head on one line (`REQUEST <head with
//! \r\n as |>`), answering like a web app that knows nothing: a page, or
//! an event stream that says nothing. It runs until it is killed.
//!
//! Usage: `squatter PORT`. Prints `LISTENING PORT` once it listens.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: squatter PORT");
    let mut listeners = Vec::new();
    for ip in ["127.0.0.1", "::1"] {
        let addr = SocketAddr::new(ip.parse().expect("an ip"), port);
        if let Ok(l) = TcpListener::bind(addr) {
            listeners.push(l);
        }
    }
    assert!(!listeners.is_empty(), "could not listen on port {port}");
    let port = listeners[0].local_addr().expect("an address").port();
    println!("LISTENING {port}");
    let _ = std::io::stdout().flush();
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            std::thread::spawn(move || {
                for stream in l.incoming().flatten() {
                    std::thread::spawn(move || answer(stream));
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn answer(stream: std::net::TcpStream) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(line.trim_end());
        head.push('|');
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "REQUEST {head}");
        let _ = out.flush();
    }
    let events = head.starts_with("GET /events");
    let mut stream = stream;
    let reply = if events {
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nevent: net\ndata: {}\n\n"
    } else {
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 26\r\nConnection: close\r\n\r\n<p>nothing to see here</p>"
    };
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.flush();
}
