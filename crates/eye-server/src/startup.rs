//! Building and running the server: open the store and the queue, start the worker,
//! bind the listener, serve until a shutdown signal, then stop in order (stop taking
//! requests, finish those in flight, drain the queue into the store, close the queue).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use eye_queue::{EmbeddedQueue, NatsOptions, NatsQueue, Queue};
use eye_schema::Registry;
use eye_store::{PgStore, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

use eye_pipeline::{Checker, Worker};

use crate::config::Settings;
use crate::http::error;
use crate::http::telemetry::Metrics;
use crate::http::tokens::Authenticator;
use crate::state::{AppState, Shared};

/// How often a worker looks for indexes another process declared (its own
/// declarations wake it at once).
const INDEX_BUILDER_EVERY: Duration = Duration::from_secs(5);

/// The whole HTTP surface of `eye serve` and `eye api`: the JSON API, the admin UI and
/// the OpenAPI document with Swagger UI.
pub fn router(state: AppState) -> Router {
    crate::api::routes()
        .merge(crate::admin::router())
        .route(
            "/api/schema",
            axum::routing::get(crate::api::openapi::serve_document),
        )
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/api/schema/swagger-ui")
                .config(utoipa_swagger_ui::Config::from("/api/schema")),
        )
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

/// What a process runs: `eye serve` both sides, `eye api` only the HTTP API, `eye
/// worker` only the worker (with `/healthz`, `/readyz` and `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Api,
    Worker,
}

/// A worker process answers only health and metrics.
fn operations_router(state: AppState) -> Router {
    crate::api::health::routes()
        .fallback(error::not_found)
        .with_state(state)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    role: Role,
    /// Set for the embedded queue, which must be closed (its writer flushed) last.
    embedded: Option<Arc<EmbeddedQueue>>,
    worker: Worker,
}

/// Opens the store the settings name: the embedded one in the data directory, or
/// PostgreSQL for `postgres://` URLs. Migrations run either way.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    match settings.database_url.as_deref() {
        None => {
            let data_dir = &settings.data_dir;
            let mut store = SqliteStore::open(data_dir)
                .with_context(|| format!("opening the store in {}", data_dir.display()))?;
            store.set_query_budget(settings.query_budget());
            Ok(Arc::new(store))
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let password = settings.database_password.as_ref().map(|p| p.expose());
            let mut store = PgStore::connect_with_password(url, password)
                .await
                .context("opening the PostgreSQL store (set --database-url or EYE_DATABASE_URL)")?;
            if let Some(seconds) = settings.partition_interval_seconds() {
                store.set_partition_interval(seconds);
            }
            store
                .set_query_budget(settings.query_budget())
                .context("connecting the query pool")?;
            Ok(Arc::new(store))
        }
        Some(other) => anyhow::bail!(
            "database_url (EYE_DATABASE_URL) must be a postgres:// URL, not {:?}; leave it unset for the embedded store",
            other.split('@').next_back().unwrap_or("")
        ),
    }
}

/// Opens the queue the settings name: the embedded one in the data directory, or a
/// NATS JetStream stream for `nats://` URLs.
async fn open_queue(
    settings: &Settings,
    role: Role,
) -> anyhow::Result<(Arc<dyn Queue>, Option<Arc<EmbeddedQueue>>)> {
    match settings.queue_url.as_deref() {
        None => {
            if role != Role::All {
                anyhow::bail!(
                    "`eye api` and `eye worker` run as separate processes and need a shared queue: \
                     set --queue-url (EYE_QUEUE_URL) to nats://...; the embedded queue works with `eye serve`"
                );
            }
            let data_dir = &settings.data_dir;
            let queue = Arc::new(
                EmbeddedQueue::open(data_dir)
                    .with_context(|| format!("opening the queue in {}", data_dir.display()))?,
            );
            Ok((queue.clone(), Some(queue)))
        }
        Some(url) if url.starts_with("nats://") => {
            let mut options = NatsOptions::new(url, &settings.nats_stream);
            options.replicas = settings.nats_replicas;
            let queue = NatsQueue::connect(&options)
                .await
                .with_context(|| format!("opening the NATS queue {url}"))?;
            Ok((Arc::new(queue), None))
        }
        Some(other) => anyhow::bail!(
            "queue_url (EYE_QUEUE_URL) must be a nats:// URL, not {other:?}; leave it unset for the embedded queue"
        ),
    }
}

impl Application {
    /// Opens the store and the queue (running migrations) and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_as(settings, Role::All).await
    }

    pub async fn build_as(settings: Settings, role: Role) -> anyhow::Result<Self> {
        settings.check()?;
        let store = open_store(&settings).await?;
        let (queue, embedded) = open_queue(&settings, role).await?;
        let listener = TcpListener::bind(settings.listen).await.with_context(|| {
            format!(
                "listening on {} (set --listen or EYE_LISTEN)",
                settings.listen
            )
        })?;
        let metrics = Metrics::new();
        let checker = Arc::new(Checker {
            registry: Arc::new(Registry::new(settings.unknown_event_types)),
            store: store.clone(),
            limits: settings.payload_limits(),
            clock_skew_micros: settings.clock_skew_micros(),
        });
        // Load the registry now, so that a store that cannot give it fails the start
        // rather than the first batch.
        checker
            .refresh_if_stale()
            .await
            .context("loading the schema registry")?;
        bootstrap_admin(&settings, store.as_ref()).await?;
        let worker = Worker::new(
            queue.clone(),
            store.clone(),
            checker.clone(),
            metrics.pipeline.clone(),
            settings.worker_batch_size,
            Duration::from_millis(settings.worker_linger_ms),
        );
        let rate_limiter = crate::http::rate_limit::RateLimiter::new(
            settings.rate_limit_events_per_second,
            settings.rate_limit_burst,
            settings.max_batch_events,
        );
        let state = AppState::new(Shared {
            origins: crate::http::cors::OriginPolicy::new(store.clone()),
            rate_limiter,
            index_builder: Arc::new(tokio::sync::Notify::new()),
            auth: Arc::new(Authenticator::new(store.clone())),
            metrics,
            checker,
            settings: Arc::new(settings),
            store,
            queue,
        });
        Ok(Application {
            listener,
            state,
            role,
            embedded,
            worker,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `shutdown` completes, then stops gracefully within the configured
    /// deadline.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            role,
            embedded,
            worker,
        } = self;
        let deadline = Duration::from_millis(state.settings.shutdown_timeout_ms);
        let header_read_timeout_ms = state.settings.header_read_timeout_ms;
        let (stop_worker, stop) = watch::channel(false);
        let worker_task = match role {
            Role::All | Role::Worker => Some(tokio::spawn(worker.run_until_stopped(stop))),
            Role::Api => None,
        };

        let lifecycle = match role {
            Role::All | Role::Worker => {
                Some(tokio::spawn(crate::service::lifecycle::run_until_stopped(
                    state.store.clone(),
                    state.settings.retention_policy(),
                    Duration::from_secs(state.settings.retention_check_seconds),
                    state.metrics.pipeline.clone(),
                    stop_worker.subscribe(),
                )))
            }
            Role::Api => None,
        };
        let index_builder = match role {
            Role::All | Role::Worker => {
                Some(tokio::spawn(crate::service::indexes::run_until_stopped(
                    state.store.clone(),
                    state.index_builder.clone(),
                    INDEX_BUILDER_EVERY,
                    stop_worker.subscribe(),
                )))
            }
            Role::Api => None,
        };
        let metrics = state.metrics.clone();
        let app = match role {
            Role::All | Role::Api => router(state),
            Role::Worker => operations_router(state),
        };
        let header_read_timeout = Duration::from_millis(header_read_timeout_ms);
        let app = crate::http::middleware::around(app, metrics);
        crate::http::serve::serve(listener, app, header_read_timeout, shutdown).await;

        let _ = stop_worker.send(true);
        if let Some(index_builder) = index_builder {
            // A build in progress is not waited for: it is redone at the next start.
            index_builder.abort();
        }
        if let Some(lifecycle) = lifecycle {
            // A chunk in progress finishes; what is left resumes at the next start.
            let _ = tokio::time::timeout(deadline, lifecycle).await;
        }
        if let Some(worker_task) = worker_task {
            tracing::info!("HTTP stopped; draining the queue into the store");
            if tokio::time::timeout(deadline, worker_task).await.is_err() {
                tracing::warn!(
                    ?deadline,
                    "the worker did not drain in time; queued events stay queued for the next start"
                );
            }
        }
        if let Some(queue) = embedded {
            queue.close().await;
        }
        Ok(())
    }
}

/// The first admin user from the settings (`bootstrap_admin_email` and `_password`),
/// made unless a user has that email, so that a container is set up without a shell.
async fn bootstrap_admin(settings: &Settings, store: &dyn Store) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (
        &settings.bootstrap_admin_email,
        &settings.bootstrap_admin_password,
    ) else {
        return Ok(());
    };
    let created = crate::service::users::ensure_admin(store, email, password.expose())
        .await
        .context("creating the bootstrap admin user (EYE_BOOTSTRAP_ADMIN_EMAIL)")?;
    if created {
        tracing::info!(%email, "created the bootstrap admin user");
    }
    Ok(())
}
