//! `vigil healthcheck`: probes a running agent's `/healthz` over plain HTTP/1.0 with the standard
//! library only, for container `HEALTHCHECK`s (the distroless image has no shell, curl or wget).
//! Called from main.rs; exits 0 when the agent answers 200, 1 otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Default URL probed: the agent's default listen port in the image.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9799/healthz";

/// GETs `url` (`http://host:port/path`) and succeeds on status 200. `0.0.0.0` (a listen
/// address) is probed as `127.0.0.1`.
pub fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/healthz"),
    };
    let authority = authority.replace("0.0.0.0", "127.0.0.1");
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: vigil-healthcheck\r\n\r\n"
    )
    .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) => return Err(format!("no answer from {addr}: {e}")),
        }
        if head[..len].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    let status = line.split_whitespace().nth(1).unwrap_or_default();
    if status == "200" {
        Ok(())
    } else {
        Err(format!(
            "{url} answered {:?}",
            line.lines().next().unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                // Read the whole request first: closing with unread data would reset the
                // connection before the client reads the answer.
                let mut req = Vec::new();
                let mut buf = [0u8; 512];
                while !req.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer.as_bytes());
            }
        });
        format!("http://{addr}/healthz")
    }

    #[test]
    fn healthy_unhealthy_and_closed() {
        let t = Duration::from_secs(5);
        assert_eq!(probe(&serve_once("HTTP/1.1 200 OK\r\n\r\nok"), t), Ok(()));
        let err = probe(&serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n"), t);
        assert!(err.is_err_and(|e| e.contains("503")));
        let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        assert!(probe(&format!("http://{addr}/healthz"), t).is_err());
        assert!(probe("https://x/healthz", t).is_err());
    }
}
