//! The HTTP ceiling: the same stack as The Eye (tokio, hyper, axum, serde_json) doing
//! the least an ingest endpoint can do: check the token header, parse the body as JSON,
//! and answer 202 with a count, storing nothing. What The Eye reaches is quoted as a
//! ratio of what this reaches on the same machine in the same run.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

async fn accept(headers: HeaderMap, body: Bytes) -> Response {
    if headers.get(header::AUTHORIZATION).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(events)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"accepted": events.len()})),
        )
            .into_response(),
        Ok(Value::Object(_)) => {
            (StatusCode::ACCEPTED, axum::Json(json!({"accepted": 1}))).into_response()
        }
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Serves the ceiling on `listen` until killed, printing the bound address.
pub async fn serve(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("eye: listening on http://{}", listener.local_addr()?);
    let app = Router::new().route("/events", post(accept));
    axum::serve(listener, app).await?;
    Ok(())
}
