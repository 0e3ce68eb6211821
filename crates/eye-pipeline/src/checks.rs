//! Every check an event goes through, in the order it meets them:
//!
//! 1. at acceptance, in the API (`accept`): its shape (`IncomingEvent::parse`, strict,
//!    naming the field at fault) and its payload's size, depth and JSON hygiene
//!    (`PayloadLimits::check`); a refused element is queued as a refusal;
//! 2. in the worker (`Checker::check`): the future-timestamp rule (`future`), then its
//!    type's JSON Schema (`eye_schema::Registry`);
//! 3. reprocessing a refused event (`Checker::recheck`) reruns 1 and 2 on its raw JSON.
//!
//! The schema registry is reloaded from the store when it is older than
//! [`REFRESH_EVERY`], so a schema change made by any process applies within a second.

use std::sync::Arc;
use std::time::Duration;

use eye_core::limits::PayloadLimits;
use eye_core::{Body, Envelope, IncomingEvent, Refusal, ids};
use eye_schema::{Check, Registry};
use eye_store::{OpenRefusal, Processed, Resolution, Store};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::future::check_not_in_future;

/// The acceptance checks on one element of a request: an event with its id (derived
/// from the client's `id` when it sent one, so a resend gets the same id), or a
/// refusal with a fresh id that keeps the raw element for the error store.
pub fn accept(raw: &RawValue, app_id: i64, received_at: i64, limits: &PayloadLimits) -> Envelope {
    let parsed =
        IncomingEvent::parse(raw).and_then(|event| limits.check(&event.data).map(|()| event));
    match parsed {
        Ok(event) => Envelope {
            id: ids::event_id(app_id, event.client_id.as_deref()),
            app_id,
            received_at,
            body: Body::Event(event),
        },
        Err(refusal) => Envelope {
            id: ids::new_event_id(),
            app_id,
            received_at,
            body: Body::Refused {
                refusal,
                raw: raw.to_owned(),
            },
        },
    }
}

/// How old the registry may be before it is reloaded.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);

pub struct Checker {
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    pub limits: PayloadLimits,
    pub clock_skew_micros: i64,
}

impl Checker {
    /// Reloads the registry when it is stale. If it cannot be loaded, events must not
    /// be checked against nothing: the error is returned when no registry was ever
    /// loaded, and a stale one is kept (and logged) otherwise.
    pub async fn refresh_if_stale(&self) -> anyhow::Result<()> {
        if !self.registry.is_stale(REFRESH_EVERY) {
            return Ok(());
        }
        match self.store.active_types().await {
            Ok(types) => {
                self.registry.load(types);
                Ok(())
            }
            Err(error) if self.registry.ever_loaded() => {
                tracing::warn!(%error, "reloading the schema registry failed; keeping the last one");
                Ok(())
            }
            Err(error) => Err(anyhow::Error::new(error).context("loading the schema registry")),
        }
    }

    /// Decides an accepted event's fate.
    pub fn check(
        &self,
        id: Uuid,
        app_id: i64,
        received_at: i64,
        event: IncomingEvent,
    ) -> Processed {
        if let Err(refusal) = check_not_in_future(&event, received_at, self.clock_skew_micros) {
            return error_for(id, app_id, received_at, refusal, event);
        }
        match self.registry.check(&event.event_type, &event.data) {
            Check::Valid { version } => Processed::Event {
                id,
                app_id,
                received_at,
                event,
                schema_version: version,
                warning: None,
            },
            Check::Warn {
                version,
                violations,
            } => {
                let mut warning = Refusal::schema_violation(version, violations);
                warning.message = format!("stored in shadow mode, but {}", warning.message);
                Processed::Event {
                    id,
                    app_id,
                    received_at,
                    event,
                    schema_version: Some(version),
                    warning: Some(warning),
                }
            }
            Check::Invalid(refusal) => error_for(id, app_id, received_at, refusal, event),
        }
    }

    /// Re-runs every check on an open error's raw event, as if it had just arrived
    /// (but keeping its id and the time it was received).
    pub fn recheck(&self, error: OpenRefusal) -> Resolution {
        let OpenRefusal {
            id: error_id,
            event_id,
            app_id,
            received_at,
            raw,
        } = error;
        let parsed = serde_json::from_str::<&RawValue>(&raw)
            .map_err(|e| Refusal::new("invalid_event", format!("not JSON: {e}"), None))
            .and_then(IncomingEvent::parse)
            .and_then(|event| self.limits.check(&event.data).map(|()| event));
        let event = match parsed {
            Ok(event) => event,
            Err(refusal) => {
                return Resolution::StillInvalid { error_id, refusal };
            }
        };
        match self.check(event_id, app_id, received_at, event) {
            processed @ Processed::Event { .. } => Resolution::Fixed {
                error_id,
                event: Box::new(processed),
            },
            Processed::Refused { refusal, .. } => Resolution::StillInvalid { error_id, refusal },
        }
    }
}

pub fn error_for(
    id: Uuid,
    app_id: i64,
    received_at: i64,
    refusal: Refusal,
    event: IncomingEvent,
) -> Processed {
    Processed::Refused {
        id,
        app_id,
        received_at,
        refusal,
        raw: event.to_wire().to_string(),
        event: Some(event),
    }
}
