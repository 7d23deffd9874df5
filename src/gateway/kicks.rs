//! Kicks close the Engine.IO connection, and a kicked connection cannot
//! start over.
//!
//! socketioxide 0.18 keeps the Engine.IO connection open when a socket is
//! disconnected from its namespace, and a new Socket.IO CONNECT on it gets
//! a new socket with the same id (the Engine.IO sid) and so a new session:
//! a fresh event bucket, failed-attempt count and authentication deadline
//! (issue 16, finding 2). So every kick (flooding, failed attempts, the
//! deadline) marks the sid here, and the gateway refuses any CONNECT on a
//! marked sid; then, after [`GRACE`] (time for the `error` event, the last
//! ack and the DISCONNECT packet to reach the client), the connection is
//! cut at the TCP level (`crate::connections`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socketioxide_core::Sid;

use crate::connections::Sever;

/// How long a kicked socket's client has to read why before its
/// connection is cut.
pub const GRACE: Duration = Duration::from_secs(1);
/// How long a sid stays marked: past the cut, only a long-polling session
/// (whose requests come on new connections) could still send, and
/// engineioxide's heartbeat ends it within a minute.
const REMEMBERED: Duration = Duration::from_secs(300);

#[derive(Clone, Default)]
pub struct Kicks {
    kicked: Arc<Mutex<HashMap<Sid, Instant>>>,
}

impl Kicks {
    /// Marks `sid` and cuts `connections` after the grace.
    pub fn kick(&self, sid: Sid, connections: Vec<Sever>) {
        {
            let mut kicked = self.kicked.lock().unwrap_or_else(|p| p.into_inner());
            kicked.retain(|_, at| at.elapsed() < REMEMBERED);
            kicked.insert(sid, Instant::now());
        }
        tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            for connection in connections {
                connection.sever();
            }
        });
    }

    pub fn is_kicked(&self, sid: Sid) -> bool {
        self.kicked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sid)
            .is_some_and(|at| at.elapsed() < REMEMBERED)
    }
}
