//! A minimal HTTP server for the browser tests' pages: they must come from a real
//! origin of their own (the one the application allows), not from `file://`.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every request on `listener` with `answer(path)`: a content type and a body,
/// one request per connection.
pub async fn serve<F>(listener: TcpListener, answer: F)
where
    F: Fn(&str) -> (&'static str, Vec<u8>) + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    while let Ok((mut stream, _)) = listener.accept().await {
        let answer = Arc::clone(&answer);
        tokio::spawn(async move {
            // The request line is all we need, but it is read up to the blank line:
            // one read can return part of a request.
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let path = text.split_whitespace().nth(1).unwrap_or("/");
            let (content_type, body) = answer(path);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        });
    }
}
