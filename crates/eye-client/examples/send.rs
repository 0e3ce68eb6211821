//! Sends N page views to a server and reports how fast they were taken and stored.
//!
//! ```sh
//! eye app create demo                      # prints an ingest token
//! cargo run --release -p eye-client --example send -- http://127.0.0.1:8000 eye_i_… 100000
//! ```

use std::time::Instant;

use eye_client::{Client, Config, Event};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(endpoint), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: send ENDPOINT INGEST_TOKEN [COUNT]");
        std::process::exit(2);
    };
    let count: usize = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let mut config = Config::new(endpoint, token);
    config.batch_size = 1000;
    // Room for every event: this example measures sending, not the overflow policy.
    config.max_buffer = count.max(1000);
    let client = Client::new(config)?;
    let started = Instant::now();
    for i in 0..count {
        let event = Event::new(
            format!("example-{}", i % 1000),
            "page interaction",
            "pageview",
            json!({"host": "www.example.com", "path": format!("/item/{i}")}),
        );
        client.track(event)?;
    }
    let tracked = started.elapsed();
    let stats = client.shutdown().await;
    let total = started.elapsed();
    println!(
        "{count} tracked in {:.2} s; answered after {:.2} s: {:.0} events/s; {stats:?}",
        tracked.as_secs_f64(),
        total.as_secs_f64(),
        stats.sent as f64 / total.as_secs_f64()
    );
    Ok(())
}
