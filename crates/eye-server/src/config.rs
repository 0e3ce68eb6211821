//! Settings: defaults, then an optional `eye.toml`, then `EYE_*` variables, then flags.
//! The binary resolves flags and variables (clap reads both); this module owns the
//! defaults, the file format and the checks, so every entry point shares them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use eye_core::limits::PayloadLimits;
use eye_schema::UnknownTypePolicy;

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Where the embedded store and queue keep their files.
    pub data_dir: PathBuf,
    /// Most events in one ingest request.
    pub max_batch_events: usize,
    /// Largest ingest body, in bytes, after decompression.
    pub max_body_bytes: usize,
    /// How far in the future (milliseconds) a timestamp may be before it is an error.
    pub clock_skew_ms: u64,
    /// Most events waiting in the queue; a request that would pass it waits for room
    /// (`queue_full_wait_ms`), then gets 503.
    pub queue_max_depth: u64,
    /// How long (milliseconds) a request waits for room in a full queue before its 503:
    /// a full queue slows its clients down to the worker's pace before it refuses them.
    pub queue_full_wait_ms: u64,
    /// Most events the worker stores in one transaction.
    pub worker_batch_size: usize,
    /// How long (milliseconds) a small batch waits for more events before it is stored
    /// while the store is quick; under load the worker waits longer (four times its last
    /// write, at most ten times this, while events keep coming), and never once a full
    /// batch is waiting.
    pub worker_linger_ms: u64,
    /// How long a graceful shutdown may take (milliseconds) before the process exits.
    pub shutdown_timeout_ms: u64,
    /// Largest event payload (`data`), in bytes of JSON text.
    pub max_payload_bytes: usize,
    /// Deepest nesting of objects and arrays in an event payload.
    pub max_payload_depth: usize,
    /// What happens to events of a type that is not registered: `accept` or `reject`.
    pub unknown_event_types: UnknownTypePolicy,
    /// The store: unset for the embedded one, or `postgres://user@host:port/db`.
    pub database_url: Option<String>,
    /// The PostgreSQL password when it is not in `database_url`.
    pub database_password: Option<Secret>,
    /// The queue: unset for the embedded one, or `nats://host:port[,nats://...]`.
    pub queue_url: Option<String>,
    /// The JetStream stream's name; deployments sharing a NATS use different names.
    pub nats_stream: String,
    /// The stream's replica count (1, or 3 on a 3-node cluster).
    pub nats_replicas: usize,
    /// How long (milliseconds) a client may take to send a request's headers.
    pub header_read_timeout_ms: u64,
    /// How long (milliseconds) a client may take to send an ingest body, start to end.
    pub body_read_timeout_ms: u64,
    /// Events per second each application may send (token bucket); 0 means no limit.
    pub rate_limit_events_per_second: u64,
    /// The bucket's size: how many events an application may send at once after a pause
    /// (0 means one second's worth, or one full batch if that is more).
    pub rate_limit_burst: u64,
    /// How long (minutes) an admin-UI login lasts before its user must log in again.
    pub admin_session_minutes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("./eye-data"),
            max_batch_events: 1_000,
            max_body_bytes: 1024 * 1024,
            clock_skew_ms: 5_000,
            // A few seconds of the worker's work: the lag to storage stays within
            // seconds whatever the load (see BENCHMARKS.md, sustained).
            queue_max_depth: 100_000,
            queue_full_wait_ms: 3_000,
            // A transaction of 50,000 events stores ~80k events/s, one of 10,000 ~50k:
            // each dirty index page is written once per transaction.
            worker_batch_size: 50_000,
            worker_linger_ms: 100,
            shutdown_timeout_ms: 10_000,
            max_payload_bytes: 32 * 1024,
            max_payload_depth: 32,
            unknown_event_types: UnknownTypePolicy::Accept,
            database_url: None,
            database_password: None,
            queue_url: None,
            nats_stream: "EYE_EVENTS".to_owned(),
            nats_replicas: 1,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            rate_limit_events_per_second: 0,
            rate_limit_burst: 0,
            admin_session_minutes: 12 * 60,
        }
    }
}

/// A secret setting: its `Debug` form never shows the value.
#[derive(Clone, PartialEq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Settings {
    /// Reads `path` when given (it must exist), or `./eye.toml` when present.
    pub fn from_file(path: Option<&Path>) -> anyhow::Result<Settings> {
        let (path, required) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from("eye.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Settings::default());
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn payload_limits(&self) -> PayloadLimits {
        PayloadLimits {
            max_bytes: self.max_payload_bytes,
            max_depth: self.max_payload_depth,
        }
    }

    pub fn clock_skew_micros(&self) -> i64 {
        i64::try_from(self.clock_skew_ms.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Refuses settings that cannot work, naming the setting to change.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.max_batch_events == 0 {
            bail!("max_batch_events (EYE_MAX_BATCH_EVENTS) must be at least 1");
        }
        if self.max_body_bytes < 1024 {
            bail!("max_body_bytes (EYE_MAX_BODY_BYTES) must be at least 1024");
        }
        if self.worker_batch_size == 0 {
            bail!("worker_batch_size (EYE_WORKER_BATCH_SIZE) must be at least 1");
        }
        if self.max_payload_bytes < 2 {
            bail!("max_payload_bytes (EYE_MAX_PAYLOAD_BYTES) must be at least 2");
        }
        if !(1..=100).contains(&self.max_payload_depth) {
            bail!("max_payload_depth (EYE_MAX_PAYLOAD_DEPTH) must be from 1 to 100");
        }
        let stream_ok = !self.nats_stream.is_empty()
            && self
                .nats_stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !stream_ok {
            bail!("nats_stream (EYE_NATS_STREAM) must be letters, digits, `_` or `-`");
        }
        if !(1..=5).contains(&self.nats_replicas) {
            bail!("nats_replicas (EYE_NATS_REPLICAS) must be from 1 to 5");
        }
        if self.header_read_timeout_ms == 0 || self.body_read_timeout_ms == 0 {
            bail!(
                "header_read_timeout_ms and body_read_timeout_ms \
                 (EYE_HEADER_READ_TIMEOUT_MS, EYE_BODY_READ_TIMEOUT_MS) must be at least 1"
            );
        }
        if self.rate_limit_events_per_second > 0
            && self.rate_limit_burst > 0
            && self.rate_limit_burst < self.max_batch_events as u64
        {
            bail!(
                "rate_limit_burst (EYE_RATE_LIMIT_BURST) must hold a full batch: at least \
                 max_batch_events ({}), or 0 for the default",
                self.max_batch_events
            );
        }
        if self.admin_session_minutes == 0 || self.admin_session_minutes > 366 * 24 * 60 {
            bail!(
                "admin_session_minutes (EYE_ADMIN_SESSION_MINUTES) must be from 1 to 527040 (a year)"
            );
        }
        if self.queue_max_depth == 0 {
            bail!("queue_max_depth (EYE_QUEUE_MAX_DEPTH) must be at least 1");
        }
        // Past the header and body timeouts' scale a client would rather be told to retry.
        if self.queue_full_wait_ms > 30_000 {
            bail!("queue_full_wait_ms (EYE_QUEUE_FULL_WAIT_MS) must be at most 30000");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eye.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nclock_skew_ms = 1\n").unwrap();
        let settings = Settings::from_file(Some(&path)).unwrap();
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.clock_skew_ms, 1);
        assert_eq!(settings.max_batch_events, 1_000);

        std::fs::write(&path, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let error = format!("{:#}", Settings::from_file(Some(&path)).unwrap_err());
        assert!(error.contains("listne"), "{error}");
        assert!(Settings::from_file(Some(&dir.path().join("missing.toml"))).is_err());
    }

    #[test]
    fn the_queue_wait_is_bounded_and_may_be_zero() {
        let mut settings = Settings::default();
        settings.check().unwrap();
        settings.queue_full_wait_ms = 0;
        settings.check().unwrap();
        settings.queue_full_wait_ms = 30_001;
        let error = settings.check().unwrap_err().to_string();
        assert!(error.contains("EYE_QUEUE_FULL_WAIT_MS"), "{error}");
    }
}
