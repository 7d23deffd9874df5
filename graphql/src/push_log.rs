//! `pushLog`: the signed-in user's durable pushes over HTTP, for a client
//! that was away longer than a reconnect (or got `resync`) and would rather
//! read than reconnect. The log itself belongs to the host (see
//! [`crate::Backend::push_log`]).

use async_graphql::{Context, Json, Object, SimpleObject};

use crate::error::{ApiError, ApiResult};
use crate::query::viewer;
use crate::types::{backend, Timestamp};

/// Most entries one `pushLog` answer holds (and its default).
const MAX_FIRST: i32 = 1000;
const DEFAULT_FIRST: i32 = 100;

/// One durable push, as it was sent.
#[derive(SimpleObject)]
pub struct LoggedPush {
    pub seq: i32,
    pub event: String,
    pub payload: Json<serde_json::Value>,
    pub created_at: Timestamp,
}

#[derive(Default)]
pub struct PushLogQueries;

#[Object]
impl PushLogQueries {
    /// Pushes to the caller with `seq` above `since`, oldest first, at most
    /// `first` (1 to 1000, default 100); only what the retention window
    /// still holds.
    async fn push_log(
        &self,
        ctx: &Context<'_>,
        since: i32,
        first: Option<i32>,
    ) -> ApiResult<Vec<LoggedPush>> {
        let me = viewer(ctx)?;
        let since =
            u64::try_from(since).map_err(|_| ApiError::bad_input("since must be 0 or more"))?;
        let first = first.unwrap_or(DEFAULT_FIRST);
        if !(1..=MAX_FIRST).contains(&first) {
            return Err(ApiError::bad_input(format!(
                "first must be 1 to {MAX_FIRST}"
            )));
        }
        let entries = backend(ctx)
            .push_log(me.id, since, first.unsigned_abs() as usize)
            .await?;
        Ok(entries
            .into_iter()
            .map(|entry| LoggedPush {
                seq: i32::try_from(entry.seq).unwrap_or(i32::MAX),
                event: entry.event,
                payload: Json(entry.payload),
                created_at: Timestamp(entry.created_at),
            })
            .collect())
    }
}
