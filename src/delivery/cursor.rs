//! One connection's place in its user's log: what it has been sent, so that
//! every durable push reaches it once, in `seq` order, whatever way the push
//! came (live on this node, from another node over Redis, or replayed
//! after a reconnect).
//!
//! Everything sent to a connection from its log goes through its cursor's
//! lock. A push whose `seq` the connection already has is dropped; one that
//! arrives ahead of a gap (a message lost between nodes, two pushes racing)
//! first has the gap filled from the log. So order and "no duplicate, no
//! gap" never depend on how messages travel between nodes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// How long after a push is queued its arrival is in doubt. A connection
/// that dies leaves its place this much before its last push: what it was
/// sent last may have been in flight on a dead TCP connection, so it is
/// sent again (same `seq`) rather than lost.
pub const IN_DOUBT: Duration = Duration::from_secs(1);
/// Pushes remembered with their time, for `IN_DOUBT`.
const RECENT: usize = 64;

use super::log::{LogError, PushLog};

/// Where a connection's durable pushes go: the transport's own way of
/// sending one event (a Socket.IO emit, a plain WebSocket frame).
pub trait Outbox: Sync {
    /// Queues `event` with `payload` and `meta` (`{ seq }`, or `{ seq,
    /// replayed: true }`); false when the connection could not take it
    /// (closed, or its buffer full). The cursor then does not move past
    /// it: the next push fills it in, or the device resumes before it.
    fn send(&self, event: &str, payload: &Value, meta: &Value) -> bool;
}

#[derive(Default)]
pub struct Cursor {
    position: Mutex<Position>,
    /// The place last saved for this connection (`checkpoint`), plus one;
    /// 0 while none was.
    saved: std::sync::atomic::AtomicU64,
}

#[derive(Default, Debug)]
pub struct Position {
    /// The user whose log this connection follows; none while unbound.
    user: Option<Uuid>,
    /// The last `seq` this connection was sent (or started after); none
    /// when its start could not be read (the log was unreachable): then the
    /// next live push starts it, with nothing filled in before.
    last: Option<u64>,
    /// The last pushes sent and when, oldest first (empty, and so without
    /// an allocation, on a connection nothing is pushed to).
    recent: VecDeque<(u64, Instant)>,
}

/// What a resume sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    pub count: usize,
    /// Set when the log no longer held everything after the asked-for seq:
    /// the oldest seq it still had (`resync` was sent).
    pub resync_from: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The client claims more than was ever pushed to this user: another
    /// user's numbers, or made up. Nothing is replayed.
    #[error("since {since} is ahead of this user's log, which ends at {head}")]
    Ahead { since: u64, head: u64 },
    #[error(transparent)]
    Log(#[from] LogError),
}

impl Cursor {
    /// Holds the connection's place while something is decided or sent;
    /// pushes for it wait meanwhile, then are sent or dropped in order.
    pub async fn lock(&self) -> MutexGuard<'_, Position> {
        self.position.lock().await
    }

    /// Where a connection that just died should resume: its last `seq`,
    /// less what was sent in the last `IN_DOUBT`. None while the lock is
    /// held (then something is being sent, and the place is not settled).
    pub fn place_to_leave(&self) -> Option<(Uuid, u64)> {
        let position = self.position.try_lock().ok()?;
        let last = position.last?;
        let doubt_from = Instant::now().checked_sub(IN_DOUBT);
        let in_doubt = position
            .recent
            .iter()
            .find(|(_, at)| doubt_from.is_none_or(|from| *at > from));
        let place = match in_doubt {
            Some((seq, _)) => seq.saturating_sub(1),
            None => last,
        };
        position.user.map(|user| (user, place))
    }
}

impl Cursor {
    /// The place to save now, if it moved since the last one saved: a node
    /// that dies without a word leaves its sockets' places behind this way.
    pub fn checkpoint(&self) -> Option<(Uuid, u64)> {
        use std::sync::atomic::Ordering;
        let (user, place) = self.place_to_leave()?;
        let previous = self.saved.swap(place + 1, Ordering::Relaxed);
        (previous != place + 1).then_some((user, place))
    }
}

impl Position {
    /// From now on the connection follows `user`'s log, having everything
    /// up to `last`.
    pub fn follow(&mut self, user: Uuid, last: Option<u64>) {
        self.user = Some(user);
        self.last = last;
        self.recent.clear();
    }

    pub fn unfollow(&mut self) {
        self.user = None;
        self.last = None;
        self.recent.clear();
    }

    /// Sends one logged push and, if the connection took it, moves past it.
    fn send(
        &mut self,
        outbox: &dyn Outbox,
        seq: u64,
        event: &str,
        payload: &Value,
        replayed: bool,
    ) -> bool {
        if !outbox.send(event, payload, &meta(seq, replayed)) {
            return false;
        }
        self.last = Some(seq);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((seq, Instant::now()));
        true
    }

    pub fn last(&self) -> Option<u64> {
        self.last
    }

    pub fn user(&self) -> Option<Uuid> {
        self.user
    }

    /// A live push. Dropped if the connection follows someone else or
    /// already has it; a gap before it is filled from the log first.
    pub async fn offer(
        &mut self,
        log: &PushLog,
        outbox: &dyn Outbox,
        user: Uuid,
        seq: u64,
        event: &str,
        payload: &Value,
    ) {
        if self.user != Some(user) {
            return;
        }
        let Some(last) = self.last else {
            self.send(outbox, seq, event, payload, false);
            return;
        };
        if seq <= last {
            return;
        }
        if seq > last + 1 {
            let missing = usize::try_from(seq - last - 1).unwrap_or(usize::MAX);
            match log.read(user, last, missing).await {
                Ok(read) => {
                    for entry in read.entries.iter().filter(|e| e.seq < seq) {
                        if !self.send(outbox, entry.seq, &entry.event, &entry.payload, false) {
                            return;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(user_id = %user, error = %err, after = last, "could not fill a gap from the push log");
                }
            }
        }
        self.send(outbox, seq, event, payload, false);
    }

    /// Sends every logged push after `since` (a `resync` first when some of
    /// them are gone), marked as replayed, and follows on from the newest.
    pub async fn replay(
        &mut self,
        log: &PushLog,
        outbox: &dyn Outbox,
        user: Uuid,
        since: u64,
        max_events: usize,
    ) -> Result<Replayed, ReplayError> {
        let read = log.read(user, since, max_events).await?;
        if since > read.head {
            self.follow(user, Some(read.head));
            return Err(ReplayError::Ahead {
                since,
                head: read.head,
            });
        }
        let resync_from = read.missing_before(since);
        if let Some(oldest) = resync_from {
            outbox.send(
                "resync",
                &json!({ "since": since, "oldest": oldest }),
                &Value::Null,
            );
        }
        // What expired is skipped: the client was told by `resync`.
        let start = match (resync_from, read.entries.first()) {
            (Some(_), None) => read.head,
            (Some(_), Some(first)) => first.seq - 1,
            (None, _) => since,
        };
        self.follow(user, Some(start));
        let mut count = 0;
        for entry in &read.entries {
            if !self.send(outbox, entry.seq, &entry.event, &entry.payload, true) {
                break;
            }
            count += 1;
        }
        Ok(Replayed { count, resync_from })
    }
}

/// The second argument of a durable push.
pub fn meta(seq: u64, replayed: bool) -> Value {
    if replayed {
        json!({ "seq": seq, "replayed": true })
    } else {
        json!({ "seq": seq })
    }
}
