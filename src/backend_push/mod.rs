//! Pushes from other services (workers, cron jobs, services in other
//! languages) that reach users without linking Tidings: over a Redis
//! channel (`listener`) or over HTTP (`http::push_api`). Both validate here
//! and deliver through the one push service.

pub mod listener;
mod message;

pub use message::{BackgroundPush, PushRejected, Target};

use uuid::Uuid;

/// Event name used when a message does not name one.
pub const DEFAULT_EVENT: &str = "push";

/// Names a backend may not push: they would impersonate the gateway's own
/// events (`auth`, `error`, `tabWindowId`) or Socket.IO's reserved ones.
const RESERVED_EVENTS: [&str; 9] = [
    "auth",
    "error",
    "tabWindowId",
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

pub fn check_event(name: &str) -> Result<(), PushRejected> {
    let printable = name.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if name.is_empty() || name.len() > 64 || !printable {
        return Err(PushRejected::BadEvent);
    }
    if RESERVED_EVENTS.contains(&name) {
        return Err(PushRejected::ReservedEvent(name.to_owned()));
    }
    Ok(())
}

/// Room names: 1 to 128 printable ASCII characters without spaces.
pub fn check_room(name: &str) -> Result<(), PushRejected> {
    let printable = name.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if name.is_empty() || name.len() > 128 || !printable {
        return Err(PushRejected::BadRoom(name.chars().take(40).collect()));
    }
    Ok(())
}

/// A Tidings user id, or the id of a user known to another system
/// (`github:ferbs`; see `auth::outside`).
pub fn parse_user(id: &str) -> Result<Uuid, PushRejected> {
    crate::auth::outside::user_id_for(id)
        .map_err(|_| PushRejected::BadUser(id.chars().take(40).collect()))
}
