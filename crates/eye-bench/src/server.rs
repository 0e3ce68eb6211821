//! Starting the servers under test as child processes, and reading what they report:
//! their address, their metrics and their peak memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

pub struct ServerProcess {
    child: Child,
    pub address: SocketAddr,
    pub token: String,
    _data: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts `eye serve` on a fresh data directory with an application and its token.
    pub fn start_eye(eye: &Path, extra: &[String]) -> anyhow::Result<Self> {
        let data = tempfile::Builder::new().prefix("eye-bench-").tempdir()?;
        let output = Command::new(eye)
            .arg("--data-dir")
            .arg(data.path())
            .args(["app", "create", "bench"])
            .output()
            .with_context(|| format!("running {}", eye.display()))?;
        if !output.status.success() {
            bail!(
                "eye app create failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let token = String::from_utf8(output.stdout)?.trim().to_owned();
        let mut server = Self::start_eye_on(eye, data.path(), token, extra)?;
        server._data = Some(data);
        Ok(server)
    }

    /// Serves an existing data directory; `token` is one the caller created there.
    pub fn start_eye_on(
        eye: &Path,
        data_dir: &Path,
        token: String,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        Self::start_role(eye, data_dir, "serve", token, extra)
    }

    /// Starts `eye ROLE` (`serve`, `api` or `worker`) on `data_dir` with `extra` flags.
    pub fn start_role(
        eye: &Path,
        data_dir: &Path,
        role: &str,
        token: String,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(eye);
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args([role, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("EYE_LOG", "warn");
        let (child, address) = spawn(command)?;
        Ok(ServerProcess {
            child,
            address,
            token,
            _data: None,
        })
    }

    /// Starts this binary's trivial ceiling server.
    pub fn start_ceiling() -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["ceiling-server", "--listen", "127.0.0.1:0"]);
        let (child, address) = spawn(command)?;
        Ok(ServerProcess {
            child,
            address,
            token: "ceiling".into(),
            _data: None,
        })
    }

    /// Peak resident memory (VmHWM) so far, in bytes.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("piped stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            match line.strip_prefix("eye: listening on http://") {
                Some(address) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(address.to_owned());
                    }
                }
                None => eprintln!("  [server] {line}"),
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .context("the server did not start within 30 s")?;
    Ok((child, address.parse()?))
}

/// The samples of one scrape of `/metrics` that the benchmark reads.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    pub accepted: f64,
    pub stored: f64,
    pub errors: f64,
    pub queue_depth: f64,
    /// Events deleted by retention.
    pub expired: f64,
    /// (upper bound in seconds, cumulative count) of `eye_event_lag_seconds`.
    pub lag_buckets: Vec<(f64, f64)>,
}

impl Scrape {
    /// The smallest bucket bound below which a fraction `q` of lags fall.
    pub fn lag_quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.lag_buckets.last()?.1;
        if total == 0.0 {
            return None;
        }
        self.lag_buckets
            .iter()
            .find(|(_, count)| *count >= q * total)
            .map(|(le, _)| le * 1000.0)
    }
}

pub async fn scrape(address: SocketAddr) -> anyhow::Result<Scrape> {
    let text = http_get(address, "/metrics").await?;
    let mut scrape = Scrape::default();
    for line in text.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        match name {
            "eye_events_accepted_total" => scrape.accepted = value,
            "eye_events_stored_total" => scrape.stored = value,
            "eye_errors_recorded_total" => scrape.errors = value,
            "eye_queue_depth" => scrape.queue_depth = value,
            "eye_events_expired_total" => scrape.expired = value,
            _ => {
                if let Some(rest) = name.strip_prefix("eye_event_lag_seconds_bucket{le=\"") {
                    let le = rest.trim_end_matches("\"}");
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap_or(f64::NAN)
                    };
                    scrape.lag_buckets.push((bound, value));
                }
            }
        }
    }
    Ok(scrape)
}

async fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<String> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

pub fn default_eye_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name(if cfg!(windows) { "eye.exe" } else { "eye" })
}
