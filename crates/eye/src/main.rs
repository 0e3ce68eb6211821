//! `eye`: the command line. It parses flags and `EYE_*` variables (clap reads both,
//! flags first), layers them over `eye.toml` and the defaults, and calls the crates
//! that do the work. Secrets (new tokens) go alone to stdout; everything for humans
//! goes to stderr, so `TOKEN=$(eye app create web)` just works.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use eye_core::EventType;
use eye_core::auth::Scope;
use eye_core::schema::SchemaMode;
use eye_schema::UnknownTypePolicy;
use eye_server::service::users::{self, Role as UserRole};
use eye_server::service::{self, Actor, access};
use eye_server::startup::{Role, open_store};
use eye_server::{Application, Settings};
use eye_store::StoreError;

mod health;
mod secret_files;

// glibc's malloc showed up at ~13% of the ingest profile (many threads allocating
// small buffers); mimalloc's thread-local free lists make that nearly disappear.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "eye", version, about = "The Eye: behavioural event collection")]
struct Cli {
    /// Configuration file (default: ./eye.toml when present).
    #[arg(long, global = true, env = "EYE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory of the embedded store and queue [default: ./eye-data].
    #[arg(long, global = true, env = "EYE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: postgres://user@host:port/db for PostgreSQL [default: the embedded
    /// store in the data directory].
    #[arg(long, global = true, env = "EYE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The PostgreSQL password, when it is not in the URL (best from a file:
    /// EYE_DATABASE_PASSWORD_FILE).
    #[arg(
        long,
        global = true,
        env = "EYE_DATABASE_PASSWORD",
        hide_env_values = true
    )]
    database_password: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the worker in one process.
    Serve(ServeArgs),
    /// Run only the HTTP API (needs a shared queue: --queue-url nats://...).
    Api(ServeArgs),
    /// Run only the worker, with /healthz, /readyz and /metrics (needs --queue-url).
    Worker(ServeArgs),
    /// Apply pending store migrations and exit.
    Migrate,
    /// Manage applications (the senders of events).
    #[command(subcommand)]
    App(AppCommand),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage event-type schemas (JSON Schema, draft 2020-12).
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Manage the people who log in to the admin UI.
    #[command(subcommand)]
    User(UserCommand),
    /// Ask a running server whether it is healthy (exit 0) or not (exit 1): the
    /// container image's health check, which needs no curl or shell.
    Health(HealthArgs),
    /// Print the audit log of management actions, newest first.
    Audit {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Set a type's schema from FILE (`-` for stdin); the old versions are kept.
    Set {
        category: String,
        name: String,
        file: PathBuf,
        /// enforce: violations are errors; shadow: events are stored and the
        /// violations recorded as warnings [default: the type's current mode, or enforce].
        #[arg(long, value_parser = ["enforce", "shadow"])]
        mode: Option<String>,
    },
    /// List event types with their schema versions, modes and event counts.
    List,
    /// Print a type's schema (the current version unless --version is given).
    Show {
        category: String,
        name: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Remove a type's current schema: its events are no longer checked (versions are kept).
    Delete { category: String, name: String },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "EYE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Most events in one ingest request [default: 1000].
    #[arg(long, env = "EYE_MAX_BATCH_EVENTS")]
    max_batch_events: Option<usize>,
    /// Largest ingest body in bytes, after decompression [default: 1048576].
    #[arg(long, env = "EYE_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// How far in the future a timestamp may be, in milliseconds [default: 5000].
    #[arg(long, env = "EYE_CLOCK_SKEW_MS")]
    clock_skew_ms: Option<u64>,
    /// Most events waiting in the queue; a request that would pass it waits for room, then gets 503 [default: 100000].
    #[arg(long, env = "EYE_QUEUE_MAX_DEPTH")]
    queue_max_depth: Option<u64>,
    /// How long a request waits for room in a full queue before its 503, in milliseconds; 0 refuses at once [default: 3000].
    #[arg(long, env = "EYE_QUEUE_FULL_WAIT_MS")]
    queue_full_wait_ms: Option<u64>,
    /// Most events the worker stores per transaction [default: 50000].
    #[arg(long, env = "EYE_WORKER_BATCH_SIZE")]
    worker_batch_size: Option<usize>,
    /// How long a small worker batch waits for more events, in milliseconds; up to ten times longer under load [default: 100].
    #[arg(long, env = "EYE_WORKER_LINGER_MS")]
    worker_linger_ms: Option<u64>,
    /// Longest graceful shutdown, in milliseconds [default: 10000].
    #[arg(long, env = "EYE_SHUTDOWN_TIMEOUT_MS")]
    shutdown_timeout_ms: Option<u64>,
    /// Largest event payload (`data`) in bytes [default: 32768].
    #[arg(long, env = "EYE_MAX_PAYLOAD_BYTES")]
    max_payload_bytes: Option<usize>,
    /// Deepest nesting of objects and arrays in an event payload [default: 32].
    #[arg(long, env = "EYE_MAX_PAYLOAD_DEPTH")]
    max_payload_depth: Option<usize>,
    /// Events of unregistered types: accept (stored unchecked) or reject (errors)
    /// [default: accept].
    #[arg(long, env = "EYE_UNKNOWN_EVENT_TYPES", value_parser = ["accept", "reject"])]
    unknown_event_types: Option<String>,
    /// The queue: nats://host:port (comma-separated for a cluster) for NATS JetStream
    /// [default: the embedded queue in the data directory].
    #[arg(long, env = "EYE_QUEUE_URL")]
    queue_url: Option<String>,
    /// The JetStream stream's name [default: EYE_EVENTS].
    #[arg(long, env = "EYE_NATS_STREAM")]
    nats_stream: Option<String>,
    /// The JetStream stream's replica count [default: 1].
    #[arg(long, env = "EYE_NATS_REPLICAS")]
    nats_replicas: Option<usize>,
    /// How long a client may take to send a request's headers, in milliseconds
    /// [default: 10000].
    #[arg(long, env = "EYE_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// How long a client may take to send an ingest body, in milliseconds [default: 30000].
    #[arg(long, env = "EYE_BODY_READ_TIMEOUT_MS")]
    body_read_timeout_ms: Option<u64>,
    /// Events per second each application may send; 0 is no limit [default: 0].
    #[arg(long, env = "EYE_RATE_LIMIT_EVENTS_PER_SECOND")]
    rate_limit_events_per_second: Option<u64>,
    /// Events an application may send at once after a pause; 0 is one second's worth or
    /// one full batch, whichever is more [default: 0].
    #[arg(long, env = "EYE_RATE_LIMIT_BURST")]
    rate_limit_burst: Option<u64>,
    /// How long an admin-UI login lasts, in minutes [default: 720].
    #[arg(long, env = "EYE_ADMIN_SESSION_MINUTES")]
    admin_session_minutes: Option<u64>,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
}

/// A first admin user made at start when it does not exist yet, so that a container
/// can be set up without an interactive shell.
#[derive(Args, Default)]
struct BootstrapArgs {
    /// Email of an admin user to create at start if no user has it.
    #[arg(long, env = "EYE_BOOTSTRAP_ADMIN_EMAIL")]
    bootstrap_admin_email: Option<String>,
    /// That user's password (best from a file: EYE_BOOTSTRAP_ADMIN_PASSWORD_FILE).
    #[arg(long, env = "EYE_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
    bootstrap_admin_password: Option<String>,
}

#[derive(Args)]
struct HealthArgs {
    /// The address the server listens on; a wildcard address is probed on loopback
    /// [default: 127.0.0.1:8000].
    #[arg(long, env = "EYE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Ask /readyz (the store answers and the queue has room) instead of /healthz.
    #[arg(long)]
    ready: bool,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
}

#[derive(Subcommand)]
enum AppCommand {
    /// Register an application; prints its new ingest token alone on stdout.
    Create {
        name: String,
        /// A browser origin allowed to send its events (https://shop.example, or *);
        /// repeat for more.
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
    },
    /// Replace an application's allowed browser origins (none given: no browser).
    Origins {
        name: String,
        #[arg(long = "allowed-origin")]
        allowed_origins: Vec<String>,
    },
    /// List applications.
    List,
    /// Revoke an application and all its tokens.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from stdin (one line), or prompted for
    /// without echo when stdin is a terminal.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "analyst"])]
        role: String,
    },
    /// List users: email, role, status (never the password hashes).
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; prints it alone on stdout. It is shown only this once.
    Create {
        /// What the token may do: ingest, read or admin.
        #[arg(long, value_parser = ["ingest", "read", "admin"])]
        scope: String,
        /// The application an ingest token sends for.
        #[arg(long)]
        app: Option<String>,
        /// A note saying who or what holds the token.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens: id, scope, application, label, status (never the secrets).
    List,
    /// Revoke a token by its id (from `eye token list`); within a second everywhere.
    Revoke { id: i64 },
}

fn main() -> anyhow::Result<()> {
    let command = secret_files::apply(Cli::command())?;
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    let server = matches!(
        cli.command,
        Command::Serve(_) | Command::Api(_) | Command::Worker(_)
    );
    init_logging(server);
    if let Command::Health(args) = &cli.command {
        return health(args);
    }
    let mut settings = Settings::from_file(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        settings.data_dir = dir;
    }
    if let Some(url) = cli.database_url {
        settings.database_url = Some(url);
    }
    if let Some(password) = cli.database_password {
        settings.database_password = Some(password.into());
    }
    // SQLite calls run on the blocking pool. A small pool bounds memory (each thread
    // keeps its own allocator heap) at no cost in speed: the store has one writer and a
    // handful of readers, so more threads would only wait on the same locks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(settings, args, Role::All).await,
            Command::Api(args) => serve(settings, args, Role::Api).await,
            Command::Worker(args) => serve(settings, args, Role::Worker).await,
            Command::Health(_) => unreachable!("answered before the runtime starts"),
            Command::Migrate => {
                open_store(&settings).await?;
                eprintln!("the store is up to date");
                Ok(())
            }
            Command::App(command) => app(&settings, command).await,
            Command::Token(command) => token(&settings, command).await,
            Command::Schema(command) => schema(&settings, command).await,
            Command::Audit { limit } => audit(&settings, limit).await,
            Command::User(command) => user(&settings, command).await,
        }
    })
}

/// Servers log at `info` to stdout, where a container runtime or a service manager
/// collects it; other commands log warnings only, to stderr, because their stdout is
/// their answer (`TOKEN=$(eye app create web)`).
fn init_logging(server: bool) {
    let default = if server { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EYE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal: escape codes in a log file or a
    // collector's pipe are noise (and cost ~1,000 instructions per request's span).
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let colour = colour && (!server || std::io::stdout().is_terminal());
    let writer = if server {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(writer);
    // Human-readable by default; one JSON object per line for log collectors.
    match std::env::var("EYE_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().with_current_span(true).init(),
        Ok("human") | Err(_) => builder.init(),
        Ok(other) => {
            builder.init();
            tracing::warn!(
                format = other,
                "EYE_LOG_FORMAT must be human or json; using human"
            );
        }
    }
}

fn apply(mut settings: Settings, args: ServeArgs) -> Settings {
    let ServeArgs {
        listen,
        max_batch_events,
        max_body_bytes,
        clock_skew_ms,
        queue_max_depth,
        queue_full_wait_ms,
        worker_batch_size,
        worker_linger_ms,
        shutdown_timeout_ms,
        max_payload_bytes,
        max_payload_depth,
        unknown_event_types,
        queue_url,
        nats_stream,
        nats_replicas,
        header_read_timeout_ms,
        body_read_timeout_ms,
        rate_limit_events_per_second,
        rate_limit_burst,
        admin_session_minutes,
        bootstrap: _,
    } = args;
    settings.listen = listen.unwrap_or(settings.listen);
    settings.max_batch_events = max_batch_events.unwrap_or(settings.max_batch_events);
    settings.max_body_bytes = max_body_bytes.unwrap_or(settings.max_body_bytes);
    settings.clock_skew_ms = clock_skew_ms.unwrap_or(settings.clock_skew_ms);
    settings.queue_max_depth = queue_max_depth.unwrap_or(settings.queue_max_depth);
    settings.queue_full_wait_ms = queue_full_wait_ms.unwrap_or(settings.queue_full_wait_ms);
    settings.worker_batch_size = worker_batch_size.unwrap_or(settings.worker_batch_size);
    settings.worker_linger_ms = worker_linger_ms.unwrap_or(settings.worker_linger_ms);
    settings.shutdown_timeout_ms = shutdown_timeout_ms.unwrap_or(settings.shutdown_timeout_ms);
    settings.max_payload_bytes = max_payload_bytes.unwrap_or(settings.max_payload_bytes);
    settings.max_payload_depth = max_payload_depth.unwrap_or(settings.max_payload_depth);
    if let Some(policy) = unknown_event_types
        .as_deref()
        .and_then(UnknownTypePolicy::parse)
    {
        settings.unknown_event_types = policy;
    }
    settings.queue_url = queue_url.or(settings.queue_url);
    settings.nats_stream = nats_stream.unwrap_or(settings.nats_stream);
    settings.nats_replicas = nats_replicas.unwrap_or(settings.nats_replicas);
    settings.header_read_timeout_ms =
        header_read_timeout_ms.unwrap_or(settings.header_read_timeout_ms);
    settings.body_read_timeout_ms = body_read_timeout_ms.unwrap_or(settings.body_read_timeout_ms);
    settings.rate_limit_events_per_second =
        rate_limit_events_per_second.unwrap_or(settings.rate_limit_events_per_second);
    settings.rate_limit_burst = rate_limit_burst.unwrap_or(settings.rate_limit_burst);
    settings.admin_session_minutes =
        admin_session_minutes.unwrap_or(settings.admin_session_minutes);
    settings
}

async fn serve(settings: Settings, mut args: ServeArgs, role: Role) -> anyhow::Result<()> {
    let BootstrapArgs {
        bootstrap_admin_email,
        bootstrap_admin_password,
    } = std::mem::take(&mut args.bootstrap);
    // Checked before anything starts (clap's `requires` does not see a value that came
    // from a *_FILE default).
    let bootstrap_admin = match (bootstrap_admin_email, bootstrap_admin_password) {
        (Some(email), Some(password)) => Some((email, password)),
        (None, None) => None,
        _ => bail!(
            "a bootstrap admin needs both EYE_BOOTSTRAP_ADMIN_EMAIL and \
             EYE_BOOTSTRAP_ADMIN_PASSWORD (or EYE_BOOTSTRAP_ADMIN_PASSWORD_FILE)"
        ),
    };
    let settings = apply(settings, args);
    let deadline = std::time::Duration::from_millis(settings.shutdown_timeout_ms);
    let app = Application::build_as(settings, role).await?;
    if let Some((email, password)) = bootstrap_admin {
        let created = users::ensure_admin(app.store(), &email, &password)
            .await
            .context("creating the bootstrap admin user (EYE_BOOTSTRAP_ADMIN_EMAIL)")?;
        if created {
            tracing::info!(%email, "created the bootstrap admin user");
        }
    }
    // Tests and scripts read this line to find the port when listening on port 0.
    eprintln!("eye: listening on http://{}", app.local_addr());
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = signalled_tx.send(());
    };
    let mut run = tokio::spawn(app.run_until_stopped(shutdown));
    tokio::select! {
        result = &mut run => return result.context("server task")?,
        _ = signalled_rx => {}
    }
    // Once a signal has come, the whole graceful shutdown gets `deadline`.
    match tokio::time::timeout(deadline, run).await {
        Ok(result) => result.context("server task")?,
        Err(_) => {
            tracing::warn!(
                ?deadline,
                "graceful shutdown took too long; exiting with work still queued"
            );
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn health(args: &HealthArgs) -> anyhow::Result<()> {
    let listen = args.listen.unwrap_or_else(|| Settings::default().listen);
    let address = health::probe_address(listen);
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    match health::get(address, path, timeout) {
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

async fn app(settings: &Settings, command: AppCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let actor = Actor::cli();
    match command {
        AppCommand::Create {
            name,
            allowed_origins,
        } => {
            let (_, token) =
                access::create_app(store.as_ref(), &actor, &name, &allowed_origins).await?;
            eprintln!("created application {name:?}; its ingest token (shown only once):");
            println!("{token}");
        }
        AppCommand::List => {
            for app in store.list_apps().await? {
                let status = match app.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\tcreated {}\t{status}\t{}",
                    app.id,
                    app.name,
                    app.created_at,
                    app.allowed_origins.join(" ")
                );
            }
        }
        AppCommand::Origins {
            name,
            allowed_origins,
        } => {
            let origins =
                access::set_origins(store.as_ref(), &actor, &name, &allowed_origins).await?;
            eprintln!(
                "{name:?} accepts events from browsers at: {}; servers apply it within a second",
                if origins.is_empty() {
                    "no origin".to_owned()
                } else {
                    origins.join(" ")
                }
            );
        }
        AppCommand::Revoke { name } => {
            access::revoke_app(store.as_ref(), &actor, &name).await?;
            eprintln!("revoked application {name:?} and its tokens");
        }
    }
    Ok(())
}

async fn token(settings: &Settings, command: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let actor = Actor::cli();
    match command {
        TokenCommand::Create { scope, app, label } => {
            let scope = Scope::parse(&scope).context("unknown scope")?;
            let (id, token) = access::create_token(
                store.as_ref(),
                &actor,
                scope,
                app.as_deref(),
                label.as_deref(),
            )
            .await?;
            eprintln!("created {} token {id} (shown only once):", scope.as_str());
            println!("{token}");
        }
        TokenCommand::List => {
            for token in store.list_tokens().await? {
                let status = match token.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{}\tcreated {}\t{status}",
                    token.id,
                    token.scope,
                    token.app.as_deref().unwrap_or("-"),
                    token.label.as_deref().unwrap_or("-"),
                    token.created_at
                );
            }
        }
        TokenCommand::Revoke { id } => {
            access::revoke_token(store.as_ref(), &actor, id).await?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}

async fn user(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    match command {
        UserCommand::Create { email, role } => {
            let role = UserRole::parse(&role).context("unknown role")?;
            let password = read_password()?;
            users::create_user(store.as_ref(), &Actor::cli(), &email, &password, role).await?;
            eprintln!("created {} user {email}", role.as_str());
        }
        UserCommand::List => {
            for user in store.list_users().await? {
                let status = match user.disabled_at {
                    Some(at) => format!("disabled {at}"),
                    None => "active".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\t{status}",
                    user.id, user.email, user.role, user.created_at
                );
            }
        }
    }
    Ok(())
}

/// A password from a prompt without echo (a terminal, asked twice) or stdin's first line.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ")?;
        let again = rpassword::prompt_password("password again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn audit(settings: &Settings, limit: usize) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    for entry in store.audit_log(limit).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            entry.at,
            entry.actor,
            entry.action,
            entry.target,
            entry.details.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn schema(settings: &Settings, command: SchemaCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    match command {
        SchemaCommand::Set {
            category,
            name,
            file,
            mode,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("reading the schema from stdin")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let schema: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            eye_schema::compile(&schema)
                .map_err(|e| anyhow::anyhow!("not a valid JSON Schema (draft 2020-12): {e}"))?;
            let event_type = event_type(category, name)?;
            let mode = mode.as_deref().and_then(SchemaMode::parse);
            let (record, created) = store
                .put_schema(&event_type, schema.to_string(), mode)
                .await?;
            if created {
                service::audit(
                    store.as_ref(),
                    &Actor::cli(),
                    "schema.set",
                    &format!("type:{}/{}", record.category, record.name),
                    Some(format!(
                        "version {}, {}",
                        record.version,
                        record.mode.as_str()
                    )),
                )
                .await;
            }
            let what = if created { "set" } else { "unchanged at" };
            eprintln!(
                "{:?}/{:?}: schema {what} version {} ({}); servers apply it within a second",
                record.category,
                record.name,
                record.version,
                record.mode.as_str()
            );
        }
        SchemaCommand::List => {
            println!("category\tname\tmode\tschema_version\tversions\tevents");
            for t in store.event_types().await? {
                let current = t
                    .schema_version
                    .map_or_else(|| "-".to_owned(), |v| v.to_string());
                let versions: Vec<String> = t.versions.iter().map(i64::to_string).collect();
                let mode = if t.registered {
                    t.mode.as_str()
                } else {
                    "unregistered"
                };
                println!(
                    "{}\t{}\t{mode}\t{current}\t{}\t{}",
                    t.category,
                    t.name,
                    if versions.is_empty() {
                        "-".to_owned()
                    } else {
                        versions.join(",")
                    },
                    t.event_count
                );
            }
        }
        SchemaCommand::Show {
            category,
            name,
            version,
        } => {
            let event_type = event_type(category, name)?;
            let record = store.schema(&event_type, version).await?.with_context(|| {
                let which =
                    version.map_or("a current schema".to_owned(), |v| format!("version {v}"));
                format!(
                    "{:?}/{:?} has no {which}",
                    event_type.category, event_type.name
                )
            })?;
            let value: serde_json::Value = serde_json::from_str(record.schema.get())?;
            eprintln!(
                "{:?}/{:?} version {} ({}{})",
                record.category,
                record.name,
                record.version,
                record.mode.as_str(),
                if record.current { ", current" } else { "" }
            );
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        SchemaCommand::Delete { category, name } => {
            let event_type = event_type(category, name)?;
            store
                .delete_schema(&event_type)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound(_) => anyhow::anyhow!(
                        "{:?}/{:?} has no current schema",
                        event_type.category,
                        event_type.name
                    ),
                    other => other.into(),
                })?;
            service::audit(
                store.as_ref(),
                &Actor::cli(),
                "schema.delete",
                &format!("type:{}/{}", event_type.category, event_type.name),
                None,
            )
            .await;
            eprintln!(
                "{:?}/{:?}: schema removed; its events are no longer checked",
                event_type.category, event_type.name
            );
        }
    }
    Ok(())
}

fn event_type(category: String, name: String) -> anyhow::Result<EventType> {
    for value in [&category, &name] {
        if value.trim().is_empty() || value.len() > eye_core::event::MAX_IDENTIFIER_LEN {
            bail!("a category or name must be 1 to 256 bytes and not blank");
        }
    }
    Ok(EventType { category, name })
}
