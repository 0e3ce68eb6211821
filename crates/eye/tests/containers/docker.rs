//! Docker and docker-compose from a test: the image built once per run, a compose
//! project per test (its own name, ports and volumes, removed when the test ends).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The image the compose files name (`image: the-eye:latest`).
pub const IMAGE: &str = "the-eye:latest";
/// The image's own layers, above Debian slim, must stay below this.
const MAX_OWN_BYTES: u64 = 40 * 1000 * 1000;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Whether a tool runs (`--version`); otherwise the test says so and passes, except in
/// CI, where the tool is required.
pub fn tool(name: &str, why: &str) -> bool {
    match Command::new(name).arg("--version").output() {
        Ok(output) if output.status.success() => true,
        result => {
            let error = match result {
                Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
                Err(error) => error.to_string(),
            };
            assert!(!in_ci(), "{name} is needed in CI ({why}): {error}");
            crate::helpers::skipped(format_args!("{name} does not run ({why}): {error}"));
            false
        }
    }
}

/// Whether a Docker engine and docker-compose answer.
pub fn docker_available() -> bool {
    let engine = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    let engine_ok = matches!(&engine, Ok(output) if output.status.success());
    if !engine_ok {
        assert!(!in_ci(), "a Docker engine is needed in CI: {engine:?}");
        crate::helpers::skipped(format_args!(
            "no Docker engine answers (start dockerd; docs/testing.md)"
        ));
        return false;
    }
    tool("docker-compose", "the compose files")
}

/// The container tests share two cores: one at a time. (An async lock: each test has
/// its own runtime and holds it across its awaits.)
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// Runs `program args` in the repository's root; the output whatever the status.
pub fn run(program: &str, args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running {program} {args:?}: {e}"))
}

/// Runs `program args` and returns its stdout; fails the test, with stderr, otherwise.
pub fn ok(program: &str, args: &[&str], env: &[(String, String)]) -> String {
    let output = run(program, args, env);
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn image_bytes(image: &str) -> u64 {
    ok(
        "docker",
        &["image", "inspect", "--format", "{{.Size}}", image],
        &[],
    )
    .trim()
    .parse()
    .expect("an image size")
}

/// Builds the image from the checkout (once per test run) and the stand-ins for the
/// official PostgreSQL and NATS images where no image has their tags (a machine
/// without a registry); prints the image's size and checks its own layers' budget.
pub fn build_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = Instant::now();
        ok("docker", &["build", "-q", "-t", IMAGE, "."], &[]);
        let own = image_bytes(IMAGE) - image_bytes("debian:bookworm-slim");
        eprintln!(
            "image {IMAGE}: built in {:.0?}, {:.1} MB in all, {:.1} MB above debian:bookworm-slim",
            started.elapsed(),
            image_bytes(IMAGE) as f64 / 1e6,
            own as f64 / 1e6
        );
        assert!(
            own <= MAX_OWN_BYTES,
            "the image's own layers are {own} bytes, over the budget of {MAX_OWN_BYTES}"
        );
        for (tag, dir) in [
            ("postgres:15", "deploy/standins/postgres"),
            ("nats:2.9-alpine", "deploy/standins/nats"),
        ] {
            if !run("docker", &["image", "inspect", tag], &[])
                .status
                .success()
            {
                eprintln!("building a stand-in for {tag} from Debian's packages ({dir})");
                ok("docker", &["build", "-q", "-t", tag, dir], &[]);
            }
        }
    });
}

/// A free TCP port on 127.0.0.1 (free when asked; the compose project takes it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// One compose project: a file, a unique project name and its variables. Dropping it
/// removes its containers and volumes (so it is not `Clone`).
pub struct Compose {
    file: String,
    project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    pub fn new(file: &str, name: &str, env: &[(&str, String)]) -> Compose {
        let project = format!("eyetest{}{name}", std::process::id());
        Compose {
            file: file.to_owned(),
            project,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["-f", self.file.as_str(), "-p", self.project.as_str()];
        all.extend_from_slice(args);
        all
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run("docker-compose", &self.args(args), &self.env)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok("docker-compose", &self.args(args), &self.env)
    }

    /// `eye ARGS` in a running service's container; its stdout, trimmed.
    pub fn eye(&self, service: &str, args: &[&str]) -> String {
        let mut all = vec!["exec", "-T", service, "eye"];
        all.extend_from_slice(args);
        self.ok(&all).trim().to_owned()
    }

    pub fn container(&self, service: &str) -> String {
        let id = self.ok(&["ps", "-a", "-q", service]).trim().to_owned();
        assert!(!id.is_empty(), "{service} has no container");
        id
    }

    pub fn inspect(&self, service: &str, format: &str) -> String {
        let id = self.container(service);
        ok("docker", &["inspect", "--format", format, &id], &[])
            .trim()
            .to_owned()
    }

    /// Waits until the image's HEALTHCHECK (`eye health`) reports the service healthy.
    pub fn wait_healthy(&self, service: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let status = self.inspect(service, "{{.State.Health.Status}}");
            if status == "healthy" {
                return;
            }
            if Instant::now() > deadline {
                let logs = self.run(&["logs", "--tail", "40", service]);
                panic!(
                    "{service} is {status:?}, not healthy, after {within:?}:\n{}",
                    String::from_utf8_lossy(&logs.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::env::var_os("EYE_TEST_KEEP_CONTAINERS").is_some() {
            eprintln!(
                "keeping compose project {} (EYE_TEST_KEEP_CONTAINERS)",
                self.project
            );
            return;
        }
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}
