//! The refused-event workflow: dismissing a record, and reprocessing the open ones
//! against the current schemas (those valid now become events exactly once, with
//! their original id and reception time), each audited.

use eye_pipeline::{Checker, PipelineMetrics};
use eye_store::{RefusedEvent, RefusedFilter, RefusedKey, ReprocessOutcome, Store, StoreError};

use super::{Actor, audit};

/// Records rechecked per store transaction.
const REPROCESS_CHUNK: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    /// Without the current schemas nothing can be rechecked.
    #[error("the schema registry cannot be loaded: {0:#}")]
    Registry(anyhow::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Marks one record `dismissed`. `described` is how the audit log names it.
pub async fn dismiss(
    store: &dyn Store,
    actor: &Actor,
    key: RefusedKey,
    described: &str,
) -> Result<RefusedEvent, StoreError> {
    let record = store.dismiss_refused(key).await?;
    audit(
        store,
        actor,
        "error.dismiss",
        &format!("error:{described}"),
        None,
    )
    .await;
    Ok(record)
}

/// Rechecks every open record matching `filter`, in chunks, each chunk's outcome in
/// one transaction (`Store::resolve_refusals`); `described` is the audit log's target.
pub async fn reprocess(
    store: &dyn Store,
    checker: &Checker,
    metrics: &PipelineMetrics,
    actor: &Actor,
    filter: RefusedFilter,
    described: &str,
) -> Result<ReprocessOutcome, ReprocessError> {
    // "Current" means as of this request, whatever the registry's age.
    checker.registry.invalidate();
    checker
        .refresh_if_stale()
        .await
        .map_err(ReprocessError::Registry)?;
    let mut total = ReprocessOutcome::default();
    let mut after_id = 0;
    loop {
        let open = store
            .open_refusals(filter.clone(), after_id, REPROCESS_CHUNK)
            .await?;
        let Some(last) = open.last() else { break };
        after_id = last.id;
        let resolutions = open
            .into_iter()
            .map(|record| checker.recheck(record))
            .collect();
        let outcome = store.resolve_refusals(resolutions).await?;
        total.reprocessed += outcome.reprocessed;
        total.still_invalid += outcome.still_invalid;
        metrics.events_stored.inc_by(outcome.reprocessed);
        metrics.refusals_reprocessed.inc_by(outcome.reprocessed);
    }
    let details = format!(
        "{} reprocessed, {} still invalid",
        total.reprocessed, total.still_invalid
    );
    audit(store, actor, "errors.reprocess", described, Some(details)).await;
    Ok(total)
}
