//! Settings: declared once, in the `settings!` list below, which makes the `Settings`
//! struct (with its defaults and its `eye.toml` keys), the `SettingsArgs` flags and
//! variables (clap), and the table the guide's settings section is checked against.
//! Precedence: defaults, then `eye.toml`, then `EYE_*` variables, then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use eye_core::limits::PayloadLimits;
use eye_core::retention::Retention;
use eye_schema::UnknownTypePolicy;

/// One setting as the guide documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingDoc {
    /// The `eye.toml` key; the flag is `--` with `-` for `_`.
    pub key: &'static str,
    pub env: &'static str,
    /// The default as the guide and `--help` show it; `None` for unset.
    pub default: Option<&'static str>,
    pub help: &'static str,
}

impl SettingDoc {
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }
}

/// Two lists: settings with a default (`name: Type = "default", "EYE_VARIABLE", "help";`,
/// the default parsed from the text, which is also what `--help` and the guide show)
/// and settings that may be unset (`name: Type, "EYE_VARIABLE", "help";`, an `Option`).
/// `#[secret]` before a name hides its value from `--help` (and `Secret` from `Debug`).
macro_rules! settings {
    (
        with_default { $( $(#[$dkind:ident])? $dname:ident : $dty:ty = $default:literal, $denv:literal, $dhelp:literal; )* }
        optional { $( $(#[$okind:ident])? $oname:ident : $oty:ty, $oenv:literal, $ohelp:literal; )* }
    ) => {
        /// Every setting of a process. See the module's documentation for the layers.
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $( #[doc = $dhelp] pub $dname: $dty, )*
            $( #[doc = $ohelp] pub $oname: Option<$oty>, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings {
                    $( $dname: $default
                        .parse()
                        .expect(concat!("the default of a setting parses: ", $default)), )*
                    $( $oname: None, )*
                }
            }
        }

        /// The settings as flags and `EYE_*` variables, each optional here so that an
        /// unset one leaves what the file or the default said.
        #[derive(Debug, Default, clap::Args)]
        pub struct SettingsArgs {
            $(
                #[arg(long, global = true, env = $denv,
                      hide_env_values = settings!(@secret $($dkind)?),
                      help = concat!($dhelp, " [default: ", $default, "]"))]
                pub $dname: Option<$dty>,
            )*
            $(
                #[arg(long, global = true, env = $oenv,
                      hide_env_values = settings!(@secret $($okind)?),
                      help = $ohelp)]
                pub $oname: Option<$oty>,
            )*
        }

        impl SettingsArgs {
            /// Lays the flags and variables that were given over `settings`.
            pub fn apply(self, settings: &mut Settings) {
                $( if let Some(value) = self.$dname { settings.$dname = value; } )*
                $( if self.$oname.is_some() { settings.$oname = self.$oname; } )*
            }
        }

        /// Every setting, for the guide's table.
        pub const SETTINGS: &[SettingDoc] = &[
            $( SettingDoc { key: stringify!($dname), env: $denv, default: Some($default), help: $dhelp }, )*
            $( SettingDoc { key: stringify!($oname), env: $oenv, default: None, help: $ohelp }, )*
        ];
    };
    (@secret secret) => { true };
    (@secret) => { false };
}

settings! {
    with_default {
        data_dir: PathBuf = "./eye-data", "EYE_DATA_DIR",
            "Where the embedded store (eye.db) and queue (queue.db) keep their files.";
        listen: SocketAddr = "127.0.0.1:8000", "EYE_LISTEN",
            "Address the HTTP server listens on (serve, api, worker; health asks it).";
        max_batch_events: usize = "1000", "EYE_MAX_BATCH_EVENTS",
            "Most events in one ingest request.";
        max_body_bytes: usize = "1048576", "EYE_MAX_BODY_BYTES",
            "Largest ingest body in bytes, checked before and after gzip.";
        segment_max_message_bytes: usize = "32768", "EYE_SEGMENT_MAX_MESSAGE_BYTES",
            "Largest Segment message (`/v1/track`... or one message of `/v1/batch`) in bytes; larger is 400, as Segment does.";
        segment_max_batch_bytes: usize = "512000", "EYE_SEGMENT_MAX_BATCH_BYTES",
            "Largest Segment batch body (`/v1/batch`, `/v1/import`) in bytes, checked before and after gzip; larger is 400.";
        clock_skew_ms: u64 = "5000", "EYE_CLOCK_SKEW_MS",
            "How far in the future (milliseconds) a timestamp may be before it is refused.";
        queue_max_depth: u64 = "100000", "EYE_QUEUE_MAX_DEPTH",
            "Most events waiting in the queue; a request that would pass it waits for room, then gets 503.";
        queue_full_wait_ms: u64 = "3000", "EYE_QUEUE_FULL_WAIT_MS",
            "How long (milliseconds) a request waits for room in a full queue before its 503; 0 refuses at once.";
        worker_batch_size: usize = "50000", "EYE_WORKER_BATCH_SIZE",
            "Most events the worker stores in one transaction.";
        worker_linger_ms: u64 = "100", "EYE_WORKER_LINGER_MS",
            "How long (milliseconds) a small batch waits for more events; up to ten times longer under load, never once a full batch waits.";
        shutdown_timeout_ms: u64 = "10000", "EYE_SHUTDOWN_TIMEOUT_MS",
            "How long (milliseconds) a graceful shutdown may take before the process exits.";
        max_payload_bytes: usize = "32768", "EYE_MAX_PAYLOAD_BYTES",
            "Largest event payload (data), in bytes of JSON text.";
        max_payload_depth: usize = "32", "EYE_MAX_PAYLOAD_DEPTH",
            "Deepest nesting of objects and arrays in an event payload.";
        nats_stream: String = "EYE_EVENTS", "EYE_NATS_STREAM",
            "The JetStream stream's name; deployments sharing a NATS use different names.";
        nats_replicas: usize = "1", "EYE_NATS_REPLICAS",
            "The stream's replica count (1, or 3 on a 3-node cluster).";
        unknown_event_types: UnknownTypePolicy = "accept", "EYE_UNKNOWN_EVENT_TYPES",
            "Events of unregistered types: accept (stored unchecked) or reject (refused).";
        header_read_timeout_ms: u64 = "10000", "EYE_HEADER_READ_TIMEOUT_MS",
            "How long (milliseconds) a client may take to send a request's headers.";
        body_read_timeout_ms: u64 = "30000", "EYE_BODY_READ_TIMEOUT_MS",
            "How long (milliseconds) a client may take to send an ingest body, start to end.";
        rate_limit_events_per_second: u64 = "0", "EYE_RATE_LIMIT_EVENTS_PER_SECOND",
            "Events per second each application may send (token bucket); 0 is no limit.";
        rate_limit_burst: u64 = "0", "EYE_RATE_LIMIT_BURST",
            "Events an application may send at once after a pause; 0 is one second's worth or one full batch, whichever is more.";
        retention: Retention = "forever", "EYE_RETENTION",
            "How long events are kept, counted from when they were received: forever, or a whole number of s, m, h, d or w (90d); an application may have its own.";
        error_retention: Retention = "forever", "EYE_ERROR_RETENTION",
            "How long refused-event records are kept, counted from when they were received.";
        retention_check_seconds: u64 = "60", "EYE_RETENTION_CHECK_SECONDS",
            "How often (seconds) expired data is deleted and unfinished erasures are resumed.";
        partition_interval: Retention = "1d", "EYE_PARTITION_INTERVAL",
            "PostgreSQL only: the span of reception time each events partition covers (1h to 366d), for the partitions made from now on.";
        query_budget_ms: u64 = "5000", "EYE_QUERY_BUDGET_MS",
            "The most time (milliseconds) one read of a query may take before it is stopped and answered 422 query_over_budget (100 to 600000); exports are not bounded.";
        admin_session_minutes: u64 = "720", "EYE_ADMIN_SESSION_MINUTES",
            "How long (minutes) an admin-UI login lasts.";
    }
    optional {
        database_url: String, "EYE_DATABASE_URL",
            "The store: postgres://user@host:port/db for PostgreSQL; unset for the embedded store.";
        #[secret] database_password: Secret, "EYE_DATABASE_PASSWORD",
            "The PostgreSQL password when it is not in the URL (best from a file: EYE_DATABASE_PASSWORD_FILE).";
        queue_url: String, "EYE_QUEUE_URL",
            "The queue: nats://host:port (comma-separated for a cluster) for NATS JetStream; unset for the embedded queue.";
        bootstrap_admin_email: String, "EYE_BOOTSTRAP_ADMIN_EMAIL",
            "An admin user created at start (serve, api) unless a user has this email.";
        #[secret] bootstrap_admin_password: Secret, "EYE_BOOTSTRAP_ADMIN_PASSWORD",
            "That user's password (best from a file: EYE_BOOTSTRAP_ADMIN_PASSWORD_FILE).";
    }
}

/// A secret setting: its `Debug` form never shows the value.
#[derive(Clone, PartialEq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

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

    /// The global retentions.
    pub fn retention_policy(&self) -> crate::service::lifecycle::Policy {
        crate::service::lifecycle::Policy {
            events: self.retention,
            refused: self.error_retention,
        }
    }

    /// The partition interval in seconds, when it is within bounds.
    pub fn query_budget(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.query_budget_ms)
    }

    pub fn partition_interval_seconds(&self) -> Option<u64> {
        use eye_store::postgres::partitions::{MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS};
        match self.partition_interval {
            Retention::Seconds(seconds)
                if (MIN_INTERVAL_SECONDS..=MAX_INTERVAL_SECONDS).contains(&seconds) =>
            {
                Some(seconds)
            }
            _ => None,
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
        if self.segment_max_message_bytes < 1024 {
            bail!(
                "segment_max_message_bytes (EYE_SEGMENT_MAX_MESSAGE_BYTES) must be at least 1024"
            );
        }
        if self.segment_max_batch_bytes < self.segment_max_message_bytes {
            bail!(
                "segment_max_batch_bytes (EYE_SEGMENT_MAX_BATCH_BYTES) must be at least segment_max_message_bytes ({})",
                self.segment_max_message_bytes
            );
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
        if self.bootstrap_admin_email.is_some() != self.bootstrap_admin_password.is_some() {
            bail!(
                "a bootstrap admin needs both EYE_BOOTSTRAP_ADMIN_EMAIL and \
                 EYE_BOOTSTRAP_ADMIN_PASSWORD (or EYE_BOOTSTRAP_ADMIN_PASSWORD_FILE)"
            );
        }
        if self.retention_check_seconds == 0 || self.retention_check_seconds > 86_400 {
            bail!("retention_check_seconds (EYE_RETENTION_CHECK_SECONDS) must be from 1 to 86400");
        }
        if self.clock_skew_ms > eye_core::limits::MAX_CLOCK_SKEW_MS {
            bail!("clock_skew_ms (EYE_CLOCK_SKEW_MS) must be at most 86400000 (a day)");
        }
        if self.partition_interval_seconds().is_none() {
            bail!("partition_interval (EYE_PARTITION_INTERVAL) must be from 1h to 366d");
        }
        if !(100..=600_000).contains(&self.query_budget_ms) {
            bail!("query_budget_ms (EYE_QUERY_BUDGET_MS) must be from 100 to 600000 (ten minutes)");
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
    fn the_guide_documents_every_setting_with_its_flag_variable_key_and_default() {
        let guide = include_str!("../../../docs/guide.md");
        let rows: Vec<&str> = guide.lines().filter(|l| l.starts_with("| `--")).collect();
        for setting in SETTINGS {
            let start = format!(
                "| `{}` | `{}` | `{}` | ",
                setting.flag(),
                setting.env,
                setting.key
            );
            let row = rows
                .iter()
                .find(|row| row.starts_with(&start))
                .unwrap_or_else(|| panic!("docs/guide.md has no row starting {start:?}"));
            let default = &row[start.len()..];
            match setting.default {
                Some(value) => assert!(
                    default.starts_with(&format!("`{value}`")),
                    "{}: the guide's default should be `{value}`: {row}",
                    setting.key
                ),
                None => assert!(default.starts_with("unset"), "{}: {row}", setting.key),
            }
        }
        for row in rows {
            let flag = row.split('`').nth(1).unwrap_or_default();
            assert!(
                flag == "--config" || SETTINGS.iter().any(|s| s.flag() == flag),
                "docs/guide.md documents {flag}, which is not a setting"
            );
        }
    }

    #[test]
    fn a_flag_overrides_the_file_and_a_secret_stays_out_of_debug() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let mut settings = Settings {
            clock_skew_ms: 1,
            ..Settings::default()
        };
        let cli = Cli::try_parse_from(["eye", "--listen", "127.0.0.1:9001"]).unwrap();
        cli.settings.apply(&mut settings);
        assert_eq!(settings.listen.port(), 9001);
        assert_eq!(
            settings.clock_skew_ms, 1,
            "what no flag set stays as the file said"
        );
        let debug = format!(
            "{:?}",
            Settings {
                database_password: Some("hunter2".parse().unwrap()),
                ..Settings::default()
            }
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

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

    #[test]
    fn the_query_budget_is_neither_zero_nor_absurd() {
        let mut settings = Settings::default();
        assert_eq!(settings.query_budget(), std::time::Duration::from_secs(5));
        for (budget, accepted) in [
            (0, false),
            (99, false),
            (100, true),
            (600_000, true),
            (600_001, false),
        ] {
            settings.query_budget_ms = budget;
            match settings.check() {
                Ok(()) => assert!(accepted, "{budget} was accepted"),
                Err(error) => {
                    assert!(!accepted, "{budget}: {error}");
                    assert!(error.to_string().contains("EYE_QUERY_BUDGET_MS"), "{error}");
                }
            }
        }
    }
}
