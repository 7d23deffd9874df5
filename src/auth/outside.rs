//! Users known to another system (a JWT `sub` such as `user_2abc`, a header
//! value such as `github:ferbs`) share Tidings' one namespace of UUIDs:
//!
//! - an id that is a canonical UUID is that Tidings user;
//! - any other id is the UUIDv5 of its exact text in [`OUTSIDE_NAMESPACE`],
//!   so every node, and every later connection, derives the same user
//!   without asking anyone; its user row is created at first sight with
//!   username `ext:<id>` (sign-up usernames cannot hold `:`, so the two
//!   never collide), the outside id as display name, and no usable secret.
//!
//! So every internal API keeps `Uuid`, and `pushToUser: "github:ferbs"`,
//! `/api/push` `users: ["github:ferbs"]`, a JWT and a trusted header all
//! land on the same user.

use entity::{now_ms, user};
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, Set};
use uuid::Uuid;

/// Fixed forever: changing it would give every outside user a new id.
pub const OUTSIDE_NAMESPACE: Uuid = Uuid::from_u128(0x6c1d_5b8e_0f3a_4e47_9a61_2b7c_d3e4_f5a6);

/// The hash of an outside user's row: not a PHC string, so no secret ever
/// verifies against it.
const NO_SECRET: &str = "!outside";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a user id is 1 to 128 printable ASCII characters without spaces")]
pub struct BadOutsideId;

/// The Tidings user an id names (see the module doc).
pub fn user_id_for(id: &str) -> Result<Uuid, BadOutsideId> {
    if let Ok(uuid) = super::parse_user_id(id) {
        return Ok(uuid);
    }
    let printable = id.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if id.is_empty() || id.len() > 128 || !printable {
        return Err(BadOutsideId);
    }
    Ok(v5(&OUTSIDE_NAMESPACE, id))
}

/// RFC 9562 UUIDv5 (SHA-1 of namespace and name), written out with the
/// `sha1` already in the build rather than turning on uuid's `v5` feature.
fn v5(namespace: &Uuid, name: &str) -> Uuid {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    hasher.update(namespace.as_bytes());
    hasher.update(name.as_bytes());
    let hash = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// `user_id_for`, creating the row of an outside user the first time.
pub async fn ensure_user(db: &DatabaseConnection, id: &str) -> Result<Uuid, OutsideError> {
    let uuid = user_id_for(id)?;
    if super::parse_user_id(id).is_ok() {
        return Ok(uuid);
    }
    let now = now_ms();
    let row = user::ActiveModel {
        id: Set(uuid),
        username: Set(format!("ext:{id}")),
        name: Set(Some(id.to_owned())),
        secret_hash: Set(NO_SECRET.to_owned()),
        socket_id: Set(None),
        created_at: Set(now),
        last_seen_at: Set(now),
    };
    let inserted = user::Entity::insert(row)
        .on_conflict(OnConflict::column(user::Column::Id).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(uuid),
        Err(err) => Err(OutsideError::Database(err)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutsideError {
    #[error(transparent)]
    BadId(#[from] BadOutsideId),
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_stay_themselves_and_other_ids_map_to_one_stable_uuid() {
        let uuid = "0192f3a4-5b6c-7d8e-9f00-112233445566";
        assert_eq!(
            user_id_for(uuid).map(|u| u.to_string()).as_deref(),
            Ok(uuid)
        );
        let a = user_id_for("github:ferbs").expect("valid");
        assert_eq!(user_id_for("github:ferbs"), Ok(a));
        assert_ne!(user_id_for("github:Ferbs"), Ok(a));
        assert_eq!(a.get_version_num(), 5);
        // RFC 9562 appendix A.4: the DNS namespace and "www.example.com".
        let dns = Uuid::from_u128(0x6ba7_b810_9dad_11d1_80b4_00c0_4fd4_30c8);
        assert_eq!(
            v5(&dns, "www.example.com").to_string(),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2"
        );
        assert_eq!(user_id_for("has space"), Err(BadOutsideId));
        assert_eq!(user_id_for(""), Err(BadOutsideId));
    }
}
