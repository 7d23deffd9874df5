//! Every few seconds, each socket's place in its user's log is saved when it
//! moved. A socket that disconnects saves its place itself; this is for the
//! node that dies without a word (SIGKILL, a lost machine), whose sockets'
//! devices must still find where to resume on another node.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use socketioxide::adapter::Adapter;
use socketioxide::SocketIo;

use super::session::Session;
use crate::delivery::Cursor;
use crate::state::WeakAppState;

/// How stale a saved place may be: pushes after it are sent again to a
/// device that comes back after a crash (duplicates, never losses).
pub const EVERY: Duration = Duration::from_secs(2);
/// Saves in flight at once.
const AT_ONCE: usize = 64;

/// Runs until the application is gone.
pub async fn keep<A: Adapter>(io: SocketIo<A>, app: WeakAppState) {
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(app) = app.upgrade() else { return };
        let due: Vec<_> = io
            .local()
            .sockets()
            .into_iter()
            .filter_map(|s| {
                let session = s.extensions.get::<Arc<Session>>()?;
                let (user, place) = s.extensions.get::<Arc<Cursor>>()?.checkpoint()?;
                Some((session, user, place))
            })
            .collect();
        stream::iter(due)
            .for_each_concurrent(AT_ONCE, |(session, user, place)| {
                let app = app.clone();
                async move { session.leave_place(&app, user, place).await }
            })
            .await;
    }
}
