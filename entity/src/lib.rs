//! sea-orm entities: the rows Tidings keeps.
//!
//! Times are `i64` milliseconds since the Unix epoch, the unit the wire
//! contract uses, so no conversion happens between a row and a push and both
//! back-ends (SQLite, PostgreSQL) store the same plain integer.

pub mod chatroom;
pub mod chatroom_member;
pub mod folder;
pub mod follow;
pub mod message;
pub mod note;
pub mod user;

/// Milliseconds since the Unix epoch, the one clock every row and push uses.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
