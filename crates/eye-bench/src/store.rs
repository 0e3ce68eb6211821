//! `eye-bench store`: the store's write path alone, without HTTP or the queue: how many
//! events per second `SqliteStore::write` takes in worker-sized transactions, with the
//! events spread over many sessions as in production.

use std::time::Instant;

use eye_core::{IncomingEvent, Timestamp, ids};
use eye_store::{PgStore, Processed, SqliteStore, Store};
use serde_json::value::RawValue;

/// The kind of client `id` the generated events carry.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ClientIds {
    /// A new UUIDv7 per event, as the SDKs send.
    Uuid7,
    /// Any other string (here `client-N`): its event id is a plain hash.
    Text,
}

impl ClientIds {
    fn make(self, i: usize) -> String {
        match self {
            ClientIds::Uuid7 => uuid::Uuid::now_v7().to_string(),
            ClientIds::Text => format!("client-{i}"),
        }
    }
}

/// `eye-bench store`'s options.
#[derive(Debug, clap::Args)]
pub struct Options {
    #[arg(long, default_value_t = 500_000)]
    pub events: usize,
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Also print the rate of every this many events, to show how the write path
    /// holds up as the store grows [default: only the total].
    #[arg(long)]
    pub report_every: Option<usize>,
    /// Give every event a client `id`: `uuid7`, as the Rust, Python and browser
    /// clients send (the event id keeps its time prefix), or `text`, any other id
    /// (the event id is a hash, random in the unique index).
    #[arg(long, value_enum)]
    pub client_ids: Option<ClientIds>,
    /// Measure the PostgreSQL store at this URL instead of the embedded one, in a
    /// schema of its own that is dropped afterwards.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Declare these payload fields indexed (JSON Pointers; every event has `/path`
    /// and `/host`) and build their indexes before writing: the write path's cost of
    /// indexed fields.
    #[arg(long)]
    pub indexed: Vec<String>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("eye-bench-store-")
        .tempdir()?;
    let (store, schema): (Box<dyn Store>, _) = match &options.database_url {
        None => (Box::new(SqliteStore::open(dir.path())?), None),
        Some(url) => {
            let schema = format!("eye_bench_{}", std::process::id());
            postgres_sql(url, &format!("CREATE SCHEMA {schema}")).await?;
            let store = PgStore::connect(&eye_store::postgres::in_schema(url, &schema)).await?;
            (Box::new(store), Some(schema))
        }
    };
    let result = write_all(&*store, &options).await;
    drop(store);
    if let (Some(url), Some(schema)) = (&options.database_url, schema) {
        postgres_sql(url, &format!("DROP SCHEMA {schema} CASCADE")).await?;
    }
    result
}

/// Runs one statement on the database at `url`.
async fn postgres_sql(url: &str, sql: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await?;
    drop(client);
    connection.await??;
    Ok(())
}

async fn write_all(store: &dyn Store, options: &Options) -> anyhow::Result<()> {
    let &Options {
        events,
        batch,
        sessions,
        report_every,
        client_ids,
        ..
    } = options;
    let app = store.create_app("bench").await?;
    if !options.indexed.is_empty() {
        let paths = options
            .indexed
            .iter()
            .map(|p| eye_core::FieldPath::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let pageview = eye_core::EventType {
            category: "page interaction".into(),
            name: "pageview".into(),
        };
        store.set_indexed_fields(&pageview, &paths).await?;
        for index in store.pending_field_indexes().await? {
            store.build_field_index(&index).await?;
        }
        println!("indexed fields: {}", options.indexed.join(", "));
    }
    let start = Timestamp::parse("2026-01-01T00:00:00Z")?.as_micros();
    let mut written = 0usize;
    let mut timings = Vec::new();
    let started = Instant::now();
    // The store's time since the last report, and the events written in it.
    let (mut segment_time, mut segment_events) = (std::time::Duration::ZERO, 0usize);
    while written < events {
        let n = batch.min(events - written);
        let processed: Vec<Processed> = (written..written + n)
            .map(|i| {
                let session = (i as u64).wrapping_mul(2_654_435_761) % sessions as u64;
                // One microsecond apart, always forward, as live traffic is: a clock
                // that wrapped would put new events in the middle of the time indexes.
                let timestamp = Timestamp::from_micros(start + i as i64);
                let client_id = client_ids.map(|kind| kind.make(i));
                let id_field = client_id
                    .as_ref()
                    .map_or(String::new(), |c| format!(r#""id":"{c}","#));
                let raw = format!(
                    r#"{{{id_field}"session_id":"bench-session-{session}","category":"page interaction","name":"pageview","data":{{"host":"www.example.com","path":"/page/{}"}},"timestamp":"{timestamp}"}}"#,
                    i % 100,
                );
                let raw = RawValue::from_string(raw).expect("valid JSON");
                Processed::Event {
                    id: ids::event_id(app.id, client_id.as_deref()),
                    app_id: app.id,
                    received_at: 0,
                    event: IncomingEvent::parse(&raw).expect("valid event"),
                    schema_version: Some(1),
                    warning: None,
                }
            })
            .collect();
        let t = Instant::now();
        let outcome = store.write(std::sync::Arc::new(processed)).await?;
        let took = t.elapsed();
        timings.push(took);
        anyhow::ensure!(
            outcome.stored as usize == n,
            "stored {} of {n}",
            outcome.stored
        );
        written += n;
        segment_time += took;
        segment_events += n;
        if let Some(every) = report_every
            && (written % every.max(1) < n || written == events)
        {
            println!(
                "store: events {:>9} to {written:>9}: {:.0} events/s",
                written - segment_events,
                segment_events as f64 / segment_time.as_secs_f64()
            );
            (segment_time, segment_events) = (std::time::Duration::ZERO, 0);
        }
    }
    let total: std::time::Duration = timings.iter().sum();
    timings.sort();
    println!(
        "store{}: {events} events{} in transactions of {batch} over {sessions} sessions: \
         {:.0} events/s in the store (median transaction {:.1} ms, wall {:.1} s)",
        if options.database_url.is_some() {
            " (PostgreSQL)"
        } else {
            ""
        },
        match client_ids {
            Some(ClientIds::Uuid7) => " with UUIDv7 client ids",
            Some(ClientIds::Text) => " with text client ids",
            None => "",
        },
        events as f64 / total.as_secs_f64(),
        timings[timings.len() / 2].as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
