//! `GET /stats`: event counts over a time range, grouped by any of category, name and
//! application, optionally per minute, hour or day (UTC).

use axum::Json;
use axum::extract::{RawQuery, State};
use eye_core::Timestamp;
use eye_store::StatsRow;
use eye_store::{Bucket, GroupBy, StatsQuery};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::auth::{Auth, Read};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::query::Params;
use crate::state::AppState;

/// Most buckets one answer may hold per group (a minute bucket over 70 days).
const MAX_BUCKETS: i64 = 100_000;

#[utoipa::path(
    get,
    path = "/stats",
    tag = "query",
    description = "Event counts over a range, grouped by any of category, name and app, optionally per minute, hour or day (UTC). Without `group_by`, the total.",
    params(
        ("group_by" = Option<String>, Query, description = "Comma-separated: `category`, `name`, `app`"),
        ("bucket" = Option<String>, Query, description = "`minute`, `hour` or `day`; needs `from` and `to`"),
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("to" = Option<String>, Query, description = "RFC 3339, exclusive"),
    ),
    responses(
        (status = 200, description = "The counts", body = StatsAnswer),
        (status = 400, description = "A bad parameter, named in `details.parameter`", body = ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
    )
)]
pub async fn get_stats(
    State(state): State<AppState>,
    _auth: Auth<Read>,
    RawQuery(query): RawQuery,
) -> Result<Json<StatsAnswer>, ApiError> {
    let params = Params::parse(query.as_deref(), &["group_by", "bucket", "from", "to"])?;
    let mut group_by = Vec::new();
    let keys = params.text("group_by");
    for key in keys.as_deref().map(|k| k.split(',')).into_iter().flatten() {
        let key = match key.trim() {
            "category" => GroupBy::Category,
            "name" => GroupBy::Name,
            "app" => GroupBy::App,
            other => {
                return Err(ApiError::bad_parameter(
                    "group_by",
                    format!(
                        "`group_by` takes category, name and app, comma-separated; not {other:?}"
                    ),
                ));
            }
        };
        if group_by.contains(&key) {
            return Err(ApiError::bad_parameter(
                "group_by",
                "`group_by` repeats a key",
            ));
        }
        group_by.push(key);
    }
    let bucket = match params.text("bucket").as_deref() {
        None => None,
        Some("minute") => Some(Bucket::Minute),
        Some("hour") => Some(Bucket::Hour),
        Some("day") => Some(Bucket::Day),
        Some(_) => {
            return Err(ApiError::bad_parameter(
                "bucket",
                "`bucket` must be minute, hour or day",
            ));
        }
    };
    let (from, to) = (params.time("from")?, params.time("to")?);
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::bad_parameter("from", "`from` is later than `to`"));
    }
    if let Some(bucket) = bucket {
        let (Some(from), Some(to)) = (from, to) else {
            return Err(ApiError::bad_parameter(
                if from.is_none() { "from" } else { "to" },
                "`bucket` needs both `from` and `to`",
            ));
        };
        let buckets = (to.as_micros() - from.as_micros()) / bucket.micros();
        if buckets > MAX_BUCKETS {
            return Err(ApiError::bad_parameter(
                "bucket",
                format!(
                    "the range holds {buckets} buckets; at most {MAX_BUCKETS}: use a larger bucket"
                ),
            ));
        }
    }
    let rows = state
        .store
        .stats(StatsQuery {
            group_by: group_by.clone(),
            bucket,
            from,
            to,
        })
        .await?;
    let total: i64 = rows.iter().map(|r| r.count).sum();
    let group_by: Vec<&'static str> = group_by
        .iter()
        .map(|g| match g {
            GroupBy::Category => "category",
            GroupBy::Name => "name",
            GroupBy::App => "app",
        })
        .collect();
    let bucket = bucket.map(|b| match b {
        Bucket::Minute => "minute",
        Bucket::Hour => "hour",
        Bucket::Day => "day",
    });
    Ok(Json(StatsAnswer {
        from,
        to,
        group_by,
        bucket,
        total,
        groups: rows,
    }))
}

/// `GET /stats`: counts over `[from, to)`, by the keys asked for.
#[derive(Serialize, ToSchema)]
pub struct StatsAnswer {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// The keys grouped by, in the order asked.
    #[schema(value_type = Vec<String>)]
    pub group_by: Vec<&'static str>,
    /// `minute`, `hour` or `day`, when counted per time bucket.
    #[schema(value_type = Option<String>)]
    pub bucket: Option<&'static str>,
    pub total: i64,
    pub groups: Vec<StatsRow>,
}
