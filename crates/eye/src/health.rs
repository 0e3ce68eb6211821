//! `eye health`: asks a running server's `/healthz` (or `/readyz`) and exits 0 only on
//! a 200. It is the container image's `HEALTHCHECK`, which must work in a runtime image
//! that has no shell, curl or wget: a few lines of HTTP/1.1 over a socket.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use eye_server::Settings;

/// `eye health`: GETs `/healthz` (or `/readyz` with `ready`) from the address the
/// settings say the server listens on; prints the answer and exits 0 on a 200, 1
/// otherwise.
pub fn probe(settings: &Settings, ready: bool, timeout_ms: u64) -> anyhow::Result<()> {
    let address = probe_address(settings.listen);
    let path = if ready { "/readyz" } else { "/healthz" };
    match get(address, path, Duration::from_millis(timeout_ms)) {
        Ok((200, body)) => {
            println!("{}", body.trim_end());
            Ok(())
        }
        Ok((status, body)) => {
            eprintln!("{address}{path} answered {status}: {}", body.trim_end());
            std::process::exit(1)
        }
        Err(error) => {
            eprintln!("{address}{path}: {error:#}");
            std::process::exit(1)
        }
    }
}

/// The address to probe for a server told to listen on `listen`: a wildcard address
/// (`0.0.0.0`, `::`) is reached through the loopback of the same family.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// GETs `path` from `address` within `timeout`; Ok with the status line's code and the
/// body.
pub fn get(address: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    // Health answers are a few dozen bytes; the bound keeps a confused peer from
    // feeding us forever.
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer from {address}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| answer.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    let Some(status) = status else {
        bail!("{address} did not answer HTTP");
    };
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_probed_on_loopback() {
        let probe = |text: &str| probe_address(text.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:8000"), "127.0.0.1:8000");
        assert_eq!(probe("[::]:9000"), "[::1]:9000");
        assert_eq!(probe("10.1.2.3:8000"), "10.1.2.3:8000");
    }

    #[test]
    fn a_status_and_body_are_read_and_a_silent_port_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            // A read may return part of the request: read up to its blank line.
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let read = socket.read(&mut chunk).unwrap();
                assert!(read > 0, "the probe closed before its request ended");
                request.extend_from_slice(&chunk[..read]);
            }
            assert!(String::from_utf8_lossy(&request).starts_with("GET /readyz "));
            socket
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}")
                .unwrap();
        });
        let (status, body) = get(address, "/readyz", Duration::from_secs(5)).unwrap();
        server.join().unwrap();
        assert_eq!((status, body.as_str()), (503, "{}"));

        // Nothing listens there any more.
        assert!(get(address, "/healthz", Duration::from_millis(500)).is_err());
    }
}
