//! This node's plain WebSocket connections, by user, by room and by tab,
//! so the push service reaches them as it reaches Socket.IO sockets.
//!
//! One std mutex over all three indexes: every operation is a few map
//! updates, never held across an `.await`, and keeping the indexes under
//! one lock means a connection is never in a room's index after it left.
//! Sending is a `try_send` into the connection's bounded queue (its writer
//! task drains it): a client that stops reading loses frames, which is
//! reported, rather than making the sender wait.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::delivery::{Cursor, Outbox};

use super::wire;

/// One plain connection as the rest of the node sees it.
pub struct Handle {
    pub id: u64,
    tx: mpsc::Sender<Message>,
    cursor: Arc<Cursor>,
    /// Opted in (`?durable=1`) to durable pushes in the `{ type, seq, data }`
    /// envelope.
    durable: bool,
    /// Its `tabWindowId`, unique across nodes: what a push that must skip
    /// this connection names (`delivery::EXCEPT_KEY`).
    tab: String,
}

impl Handle {
    pub fn cursor(&self) -> &Arc<Cursor> {
        &self.cursor
    }

    /// Queues one text frame; false if the connection is gone or its queue
    /// is full.
    pub fn send_text(&self, text: Utf8Bytes) -> bool {
        match self.tx.try_send(Message::Text(text)) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(connection = self.id, error = %err, "frame not queued to plain connection");
                false
            }
        }
    }

    pub fn send_json(&self, value: &Value) -> bool {
        self.send_text(Utf8Bytes::from(value.to_string()))
    }

    /// Queues a WebSocket ping (a keep-alive); false once the connection is
    /// gone. A full queue is no reason to give up on it.
    pub fn ping(&self) -> bool {
        !matches!(
            self.tx.try_send(Message::Ping(Default::default())),
            Err(mpsc::error::TrySendError::Closed(_))
        )
    }

    /// Asks the writer to close with `code` and `reason`.
    pub fn close(&self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        if self.tx.try_send(Message::Close(Some(frame))).is_err() {
            tracing::debug!(
                connection = self.id,
                "close not queued: connection gone or full"
            );
        }
    }
}

/// A plain connection as a cursor's outbox: frames in the contract's shape.
impl Outbox for Handle {
    fn send(&self, event: &str, payload: &Value, meta: &Value) -> bool {
        // Left out on purpose: taken, so the cursor moves past it.
        let Some(payload) = crate::delivery::addressed(payload, Some(&self.tab)) else {
            return true;
        };
        let payload = payload.as_ref();
        let frame = if self.durable {
            wire::durable_push(event, payload, meta)
        } else {
            wire::push(event, payload)
        };
        self.send_json(&frame)
    }
}

#[derive(Default)]
struct Entry {
    user: Option<Uuid>,
    tab: String,
    rooms: HashSet<String>,
    /// Rooms this connection may listen in but not relay to.
    read_only: HashSet<String>,
}

#[derive(Default)]
struct Maps {
    handles: HashMap<u64, (Arc<Handle>, Entry)>,
    by_user: HashMap<Uuid, HashSet<u64>>,
    by_room: HashMap<String, HashSet<u64>>,
    by_tab: HashMap<String, u64>,
}

#[derive(Default)]
pub struct PlainRegistry {
    next_id: AtomicU64,
    maps: Mutex<Maps>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("at most {0} connections per user")]
    TooManyConnections(usize),
    #[error("at most {0} rooms per connection")]
    TooManyRooms(usize),
}

impl PlainRegistry {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, addressable by `tab` at once.
    pub fn add(&self, tx: mpsc::Sender<Message>, tab: String, durable: bool) -> Arc<Handle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(Handle {
            id,
            tx,
            cursor: Arc::new(Cursor::default()),
            durable,
            tab: tab.clone(),
        });
        let mut maps = self.maps();
        maps.by_tab.insert(tab.clone(), id);
        let entry = Entry {
            tab,
            ..Entry::default()
        };
        maps.handles.insert(id, (handle.clone(), entry));
        handle
    }

    /// Forgets a connection; returns the user it was bound to.
    pub fn remove(&self, id: u64) -> Option<Uuid> {
        let mut guard = self.maps();
        let maps = &mut *guard;
        let (_, entry) = maps.handles.remove(&id)?;
        maps.by_tab.remove(&entry.tab);
        for room in &entry.rooms {
            drop_from(&mut maps.by_room, room, id);
        }
        if let Some(user) = entry.user {
            drop_from(&mut maps.by_user, &user, id);
        }
        entry.user
    }

    /// Binds the connection to `user`, unless the user already has `max`.
    pub fn bind(&self, id: u64, user: Uuid, max: usize) -> Result<(), RegistryError> {
        let mut guard = self.maps();
        let maps = &mut *guard;
        let count = maps.by_user.get(&user).map_or(0, HashSet::len);
        let Some((_, entry)) = maps.handles.get_mut(&id) else {
            return Ok(());
        };
        if entry.user == Some(user) {
            return Ok(());
        }
        if count >= max {
            return Err(RegistryError::TooManyConnections(max));
        }
        let previous = entry.user.replace(user);
        if let Some(previous) = previous {
            drop_from(&mut maps.by_user, &previous, id);
        }
        maps.by_user.entry(user).or_default().insert(id);
        Ok(())
    }

    pub fn user_of(&self, id: u64) -> Option<Uuid> {
        self.maps().handles.get(&id).and_then(|(_, e)| e.user)
    }

    /// Adds `room` (a repeat is harmless), unless the connection is at `max`.
    pub fn join(
        &self,
        id: u64,
        room: &str,
        read_only: bool,
        max: usize,
    ) -> Result<(), RegistryError> {
        let mut guard = self.maps();
        let maps = &mut *guard;
        let Some((_, entry)) = maps.handles.get_mut(&id) else {
            return Ok(());
        };
        if !entry.rooms.contains(room) {
            if entry.rooms.len() >= max {
                return Err(RegistryError::TooManyRooms(max));
            }
            entry.rooms.insert(room.to_owned());
        }
        if read_only {
            entry.read_only.insert(room.to_owned());
        } else {
            entry.read_only.remove(room);
        }
        maps.by_room.entry(room.to_owned()).or_default().insert(id);
        Ok(())
    }

    pub fn leave(&self, id: u64, room: &str) {
        let mut guard = self.maps();
        let maps = &mut *guard;
        let Some((_, entry)) = maps.handles.get_mut(&id) else {
            return;
        };
        entry.rooms.remove(room);
        entry.read_only.remove(room);
        drop_from(&mut maps.by_room, room, id);
    }

    pub fn in_room(&self, id: u64, room: &str) -> bool {
        self.maps()
            .handles
            .get(&id)
            .is_some_and(|(_, e)| e.rooms.contains(room))
    }

    pub fn may_publish(&self, id: u64, room: &str) -> bool {
        self.maps()
            .handles
            .get(&id)
            .is_some_and(|(_, e)| e.rooms.contains(room) && !e.read_only.contains(room))
    }

    pub fn rooms_of(&self, id: u64) -> Vec<String> {
        self.maps()
            .handles
            .get(&id)
            .map(|(_, e)| e.rooms.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn connections_of(&self, user: Uuid) -> Vec<Arc<Handle>> {
        let maps = self.maps();
        maps.by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| maps.handles.get(id).map(|(h, _)| h.clone()))
            .collect()
    }

    pub fn close_all(&self, code: u16, reason: &str) {
        let all: Vec<Arc<Handle>> = self
            .maps()
            .handles
            .values()
            .map(|(h, _)| h.clone())
            .collect();
        for handle in all {
            handle.close(code, reason);
        }
    }

    pub fn count_of(&self, user: Uuid) -> usize {
        self.maps().by_user.get(&user).map_or(0, HashSet::len)
    }

    /// Sends one frame, encoded once, to every connection in any of `rooms`
    /// (once each), except `except`. Returns how many took it.
    pub fn to_rooms(&self, rooms: &[String], frame: &Value, except: Option<u64>) -> usize {
        let targets: Vec<Arc<Handle>> = {
            let maps = self.maps();
            let ids: HashSet<u64> = rooms
                .iter()
                .filter_map(|room| maps.by_room.get(room))
                .flatten()
                .copied()
                .filter(|id| Some(*id) != except)
                .collect();
            ids.iter()
                .filter_map(|id| maps.handles.get(id).map(|(h, _)| h.clone()))
                .collect()
        };
        if targets.is_empty() {
            return 0;
        }
        let text = Utf8Bytes::from(frame.to_string());
        targets.iter().filter(|h| h.send_text(text.clone())).count()
    }

    /// The connection given `tab`, if it is bound to `user` right now.
    pub fn tab_of(&self, user: Uuid, tab: &str) -> Option<Arc<Handle>> {
        let maps = self.maps();
        let id = maps.by_tab.get(tab)?;
        let (handle, entry) = maps.handles.get(id)?;
        (entry.user == Some(user)).then(|| handle.clone())
    }

    /// Makes `user`'s connections leave `room`.
    pub fn evict(&self, user: Uuid, room: &str) {
        let ids: Vec<u64> = self
            .maps()
            .by_user
            .get(&user)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.leave(id, room);
        }
    }

    /// Unbinds `user`'s connections and leaves all their rooms; returns them
    /// so the caller can tell and close them.
    pub fn revoke(&self, user: Uuid) -> Vec<Arc<Handle>> {
        let mut guard = self.maps();
        let maps = &mut *guard;
        let ids: Vec<u64> = maps
            .by_user
            .remove(&user)
            .map(|ids| ids.into_iter().collect())
            .unwrap_or_default();
        let mut revoked = Vec::with_capacity(ids.len());
        for id in ids {
            let Some((handle, entry)) = maps.handles.get_mut(&id) else {
                continue;
            };
            entry.user = None;
            entry.read_only.clear();
            let rooms: Vec<String> = entry.rooms.drain().collect();
            revoked.push(handle.clone());
            for room in rooms {
                drop_from(&mut maps.by_room, &room, id);
            }
        }
        revoked
    }
}

fn drop_from<K, Q>(index: &mut HashMap<K, HashSet<u64>>, key: &Q, id: u64)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(ids) = index.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}
