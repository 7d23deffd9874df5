//! Note sync (docs/protocol.md, "Note sync"): `/notes` as the notes app's
//! web client uses it, every answer checked against the contract's texts.

use entity::note;
use sea_orm::EntityTrait;
use serde_json::{json, Value};

use crate::client::Transport;
use crate::helpers::*;
use crate::notes_client::*;

const TOO_LARGE: &str = "Message too large. Maximum size is 1MB.";
const RATE: &str = "Rate limit exceeded. Please slow down.";
const FORMAT: &str = "Invalid message format";
const AUTH_FAILED: &str = "Message authentication failed";

fn secret_for(token: &str, user: &str, at_ms: i64) -> String {
    use sha2::Digest;
    let window = at_ms / 300_000 * 300_000;
    let digest = sha2::Sha256::digest(format!("{token}:{user}:{window}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn stored(app: &TestApp, id: &str) -> note::Model {
    note::Entity::find_by_id(uuid::Uuid::parse_str(id).expect("uuid"))
        .one(&app.db)
        .await
        .expect("query")
        .expect("note stored")
}

#[tokio::test]
async fn auth_answers_with_the_user_and_a_session_secret_and_may_be_repeated() {
    let app = notes_app().await;
    let sub = new_sub();
    let mut client = NotesClient::connect(app.port).await;
    let token = token(&sub, 600);
    let before = entity::now_ms();
    let answer = client.auth(&token).await;
    let after = entity::now_ms();
    let secret = answer["sessionSecret"].as_str().expect("secret").to_owned();
    assert!(
        secret == secret_for(&token, &sub, before) || secret == secret_for(&token, &sub, after),
        "{answer}"
    );
    assert_eq!(
        answer,
        json!({ "type": "auth_success", "message": "Authentication successful",
                "userId": sub, "sessionSecret": secret })
    );
    // The client sends auth twice on every connect.
    assert_eq!(client.auth(&token).await["type"], "auth_success");
    client.send(&json!({ "type": "ping" })).await;
    let pong = client.expect_type("pong").await;
    assert!(pong["timestamp"].as_i64().is_some_and(|t| t >= before));
}

#[tokio::test]
async fn bad_and_expired_tokens_are_refused_and_the_connection_closed() {
    let app = notes_app().await;
    for (token, message, reason) in [
        (json!("not.a.jwt"), "Authentication failed", "auth-failed"),
        (json!(null), "Authentication failed", "auth-failed"),
        (json!(42), "Authentication failed", "auth-failed"),
        (
            json!(token(&new_sub(), -60)),
            "Token expired",
            "token-expired",
        ),
    ] {
        let mut client = NotesClient::connect(app.port).await;
        client
            .send(&json!({ "type": "auth", "token": token }))
            .await;
        assert_eq!(
            client.next().await,
            json!({ "type": "auth_failed", "message": message, "reason": reason })
        );
        assert!(client.expect_close().await.is_some());
    }
    assert!(app.is_up().await);
}

#[tokio::test]
async fn an_unauthenticated_connection_is_told_and_closed_at_the_deadline() {
    let app = notes_app_with(|c| c.notes_auth_timeout_secs = 1).await;
    let mut client = NotesClient::connect(app.port).await;
    client
        .expect_error("Authentication timeout. Connection will be closed.")
        .await;
    assert!(client.expect_close().await.is_some());
}

#[tokio::test]
async fn a_user_over_the_connection_cap_is_told_and_closed() {
    let app = notes_app_with(|c| c.notes_max_connections_per_user = 2).await;
    let sub = new_sub();
    let _a = NotesClient::signed_in(app.port, &sub).await;
    let _b = NotesClient::signed_in(app.port, &sub).await;
    let mut c = NotesClient::connect(app.port).await;
    c.send(&json!({ "type": "auth", "token": token(&sub, 600) }))
        .await;
    c.expect_error("Maximum connections exceeded for this user")
        .await;
    assert!(c.expect_close().await.is_some());
    // Another user is not affected.
    NotesClient::signed_in(app.port, &new_sub()).await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_no_origin_is_allowed() {
    let app = notes_app_with(|c| c.allowed_origins = vec!["https://notes.example".into()]).await;
    let refused = NotesClient::try_connect(app.port, "/notes", Some("https://evil.example")).await;
    assert_eq!(
        refused.err(),
        Some((403, "Forbidden: Invalid origin".to_owned()))
    );
    NotesClient::try_connect(app.port, "/notes/any/path", Some("https://notes.example"))
        .await
        .expect("allowed origin");
    NotesClient::try_connect(app.port, "/notes", None)
        .await
        .expect("no origin");
}

#[tokio::test]
async fn a_note_update_syncs_to_the_users_other_device_and_to_no_one_else() {
    let app = notes_app().await;
    let sub = new_sub();
    let note_id = create_note(&app, &sub).await;
    let mut laptop = NotesClient::signed_in(app.port, &sub).await;
    let mut phone = NotesClient::signed_in(app.port, &sub).await;
    let mut stranger = NotesClient::signed_in(app.port, &new_sub()).await;
    let mut tab = app
        .socket_with(
            Transport::WebSocket,
            crate::client::ConnectOptions {
                auth: Some(json!({ "token": token(&sub, 600) })),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(tab.expect("auth").await, json!(true));

    laptop
        .send(
            &json!({ "type": "note_update", "noteId": note_id, "changes": {
                "title": "[ENCRYPTED]", "encryptedContent": "c2", "starred": true,
                "content": "plain text must never be stored", "userId": "someone-else"
            }}),
        )
        .await;
    let success = laptop.expect_type("note_update_success").await;
    assert_eq!(success["noteId"], json!(note_id));
    assert_eq!(success["updatedNote"]["starred"], json!(true));
    let sync = phone.expect_type("note_sync").await;
    let updated_at = sync["updatedNote"]["updatedAt"].clone();
    assert_eq!(
        sync["changes"],
        json!({ "title": "[ENCRYPTED]", "encryptedContent": "c2", "starred": true, "updatedAt": updated_at })
    );
    assert_eq!(sync["fromUserId"], json!(sub));
    assert_eq!(sync["updatedNote"]["userId"], json!(sub));
    assert_eq!(sync["updatedNote"], success["updatedNote"]);
    let on_socket = tab.expect("note_sync").await;
    assert_eq!(on_socket["changes"], sync["changes"]);
    assert!(on_socket.get("__exceptConnection").is_none(), "{on_socket}");
    // The sender and the other user get nothing more.
    laptop.round_trip().await;
    stranger.round_trip().await;
    let row = stored(&app, &note_id).await;
    assert_eq!(row.content, None);
    assert_eq!(row.encrypted_content.as_deref(), Some("c2"));
    assert!(row.starred);
}

#[tokio::test]
async fn every_message_of_the_table_is_answered_as_the_contract_says() {
    let app = notes_app().await;
    let sub = new_sub();
    let note_id = create_note(&app, &sub).await;
    let mut a = NotesClient::signed_in(app.port, &sub).await;
    let mut b = NotesClient::signed_in(app.port, &sub).await;

    a.send(&json!({ "type": "nope" })).await;
    a.expect_error("Unknown message type").await;
    a.send(&json!({ "no": "type" })).await;
    a.expect_error("Unknown message type").await;

    a.send(&json!({ "type": "join_note", "noteId": note_id }))
        .await;
    assert_eq!(
        a.next().await,
        json!({ "type": "note_joined", "noteId": note_id,
                "message": "Successfully joined note for real-time sync" })
    );
    a.send(&json!({ "type": "join_note" })).await;
    a.expect_error("Missing noteId or userId").await;
    a.send(&json!({ "type": "join_note", "noteId": uuid::Uuid::new_v4().to_string() }))
        .await;
    a.expect_error("Note not found or access denied").await;
    a.send(&json!({ "type": "leave_note", "noteId": note_id }))
        .await;
    assert_eq!(
        a.next().await,
        json!({ "type": "note_left", "noteId": note_id })
    );
    a.send(&json!({ "type": "leave_note" })).await;
    a.round_trip().await;

    // Empty or missing changes: no answer at all.
    a.send(&json!({ "type": "note_update", "noteId": note_id }))
        .await;
    a.send(&json!({ "type": "note_update", "noteId": note_id, "changes": {} }))
        .await;
    a.round_trip().await;
    a.send(&json!({ "type": "note_update", "noteId": note_id, "changes": { "title": "plain" } }))
        .await;
    a.expect_error("No valid fields to update").await;

    let data = json!({ "id": "n1", "userId": sub, "title": "[ENCRYPTED]" });
    a.send(&json!({ "type": "note_created", "noteId": "n1", "noteData": data }))
        .await;
    let created = b.expect_type("note_created_sync").await;
    assert_eq!(created["noteData"], data);
    assert_eq!(created["fromUserId"], json!(sub));
    assert!(created["timestamp"].is_i64());
    a.send(&json!({ "type": "note_created", "noteId": "n1" }))
        .await;
    a.expect_error("Missing noteId or noteData").await;
    a.send(
        &json!({ "type": "note_created", "noteId": "n1", "noteData": { "userId": "user_other" } }),
    )
    .await;
    a.expect_error("Access denied: Cannot broadcast resource created by another user")
        .await;

    a.send(&json!({ "type": "note_deleted", "noteId": note_id }))
        .await;
    let deleted = b.expect_type("note_deleted_sync").await;
    assert_eq!(deleted["noteId"], json!(note_id));
    a.send(&json!({ "type": "note_deleted", "noteId": uuid::Uuid::new_v4().to_string() }))
        .await;
    a.expect_error("Note not found or access denied").await;

    let folder = graphql_bearer(
        &app,
        &token(&sub, 600),
        "mutation { createFolder(name: \"Work\", color: \"#f00\") { id } }",
        json!({}),
    )
    .await["data"]["createFolder"]["id"]
        .as_str()
        .expect("folder")
        .to_owned();
    // A GraphQL change reaches every connection, the sender's included.
    a.expect_type("folder_created_sync").await;
    b.expect_type("folder_created_sync").await;
    let folder_data = json!({ "id": "f1", "userId": sub, "name": "x" });
    a.send(&json!({ "type": "folder_created", "folderId": "f1", "folderData": folder_data }))
        .await;
    assert_eq!(
        b.expect_type("folder_created_sync").await["folderData"],
        folder_data
    );
    a.send(&json!({ "type": "folder_created", "folderId": "f1", "folderData": { "userId": "x" } }))
        .await;
    a.expect_error("Access denied: Cannot broadcast resource created by another user")
        .await;
    a.send(&json!({ "type": "folder_created", "folderId": "f1" }))
        .await;
    a.expect_error("Missing folderId or folderData").await;
    a.send(
        &json!({ "type": "folder_updated", "folderId": folder, "changes": { "name": "y" },
                    "updatedFolder": { "id": folder, "name": "y" } }),
    )
    .await;
    let updated = b.expect_type("folder_updated_sync").await;
    assert_eq!(updated["changes"], json!({ "name": "y" }));
    assert_eq!(updated["updatedFolder"]["name"], json!("y"));
    a.send(
        &json!({ "type": "folder_updated", "folderId": uuid::Uuid::new_v4().to_string(),
                    "changes": {} }),
    )
    .await;
    a.expect_error("Folder not found or access denied").await;
    a.send(&json!({ "type": "folder_deleted", "folderId": folder }))
        .await;
    assert_eq!(
        b.expect_type("folder_deleted_sync").await["folderId"],
        json!(folder)
    );
    a.send(&json!({ "type": "folder_deleted", "folderId": "' OR 1=1 --" }))
        .await;
    a.expect_error("Folder not found or access denied").await;
    a.round_trip().await;
    b.round_trip().await;
}

#[tokio::test]
async fn before_authentication_note_update_is_refused_and_the_rest_ignored() {
    let app = notes_app().await;
    let mut client = NotesClient::connect(app.port).await;
    client
        .send(&json!({ "type": "note_update", "noteId": "x", "changes": { "starred": true } }))
        .await;
    client.expect_error("Authentication required").await;
    for kind in [
        "join_note",
        "leave_note",
        "note_created",
        "note_deleted",
        "folder_created",
        "folder_updated",
        "folder_deleted",
    ] {
        client
            .send(&json!({ "type": kind, "noteId": "x", "folderId": "y" }))
            .await;
    }
    client.round_trip().await;
    // A signed message other than auth has no secret to verify against.
    let text = NotesClient::envelope(
        "no-secret",
        &json!({ "type": "ping" }),
        entity::now_ms(),
        "bm8=",
    );
    client.send_text(text).await;
    client.expect_error(AUTH_FAILED).await;
}

#[tokio::test]
async fn signed_messages_verify_and_replays_stale_future_and_forged_ones_do_not() {
    let app = notes_app().await;
    let sub = new_sub();
    let mut client = NotesClient::signed_in(app.port, &sub).await;
    let secret = client.secret.clone().expect("secret");
    client.send_signed(&json!({ "type": "ping" })).await;
    client.expect_type("pong").await;

    let now = entity::now_ms();
    let ping = json!({ "type": "ping" });
    let replayed = NotesClient::envelope(&secret, &ping, now, "cmVwbGF5");
    client.send_text(replayed.clone()).await;
    client.expect_type("pong").await;
    client.send_text(replayed).await;
    client.expect_error(AUTH_FAILED).await;

    client
        .send_text(NotesClient::envelope(
            &secret,
            &ping,
            now - 5 * 60_000 - 1_000,
            "c3RhbGU=",
        ))
        .await;
    client.expect_error(AUTH_FAILED).await;
    client
        .send_text(NotesClient::envelope(
            &secret,
            &ping,
            now + 61_000,
            "ZnV0dXJl",
        ))
        .await;
    client.expect_error(AUTH_FAILED).await;
    client
        .send_text(NotesClient::envelope("0123", &ping, now, "Zm9yZ2Vk"))
        .await;
    client.expect_error(AUTH_FAILED).await;
    // Unsigned messages are accepted.
    client.round_trip().await;
}

#[tokio::test]
async fn the_secret_of_the_timestamps_window_verifies_a_message() {
    let app = notes_app().await;
    let sub = new_sub();
    let token = token(&sub, 600);
    let mut client = NotesClient::connect(app.port).await;
    assert_eq!(client.auth(&token).await["type"], "auth_success");
    // 290 s ago is most likely in the previous window: sign with the secret
    // derived for that timestamp, as a client holding an older secret does.
    let at = entity::now_ms() - 290_000;
    let older = secret_for(&token, &sub, at);
    client
        .send_text(NotesClient::envelope(
            &older,
            &json!({ "type": "ping" }),
            at,
            "b2xk",
        ))
        .await;
    client.expect_type("pong").await;
}

#[tokio::test]
async fn a_signed_auth_is_accepted_on_a_fresh_connection() {
    let app = notes_app().await;
    let sub = new_sub();
    let mut first = NotesClient::signed_in(app.port, &sub).await;
    let old_secret = first.secret.clone().expect("secret");
    first.round_trip().await;
    // Reconnected: the client still signs, with the secret of the old
    // connection, and its first auth comes signed.
    let mut fresh = NotesClient::connect(app.port).await;
    let auth = json!({ "type": "auth", "token": token(&sub, 600) });
    fresh
        .send_text(NotesClient::envelope(
            &old_secret,
            &auth,
            entity::now_ms(),
            "ZnJlc2g=",
        ))
        .await;
    assert_eq!(fresh.read_auth_answer().await["type"], "auth_success");
    fresh.send_signed(&json!({ "type": "ping" })).await;
    fresh.expect_type("pong").await;
    // A signed auth with a bad token is still a failed authentication.
    let mut bad = NotesClient::connect(app.port).await;
    let auth = json!({ "type": "auth", "token": "x.y.z" });
    bad.send_text(NotesClient::envelope(
        &old_secret,
        &auth,
        entity::now_ms(),
        "YmFk",
    ))
    .await;
    assert_eq!(bad.next().await["reason"], "auth-failed");
}

#[tokio::test]
async fn an_oversize_frame_is_not_counted_by_the_rate_limit_but_a_pre_auth_message_is() {
    let app = notes_app_with(|c| c.notes_messages_per_minute = 3).await;
    let mut client = NotesClient::connect(app.port).await;
    let big = format!(
        "{{\"type\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    for _ in 0..5 {
        client.send_text(big.clone()).await;
        client.expect_error(TOO_LARGE).await;
    }
    // Counted before authentication: ping, unknown, garbage.
    client.send(&json!({ "type": "ping" })).await;
    client.expect_type("pong").await;
    client.send(&json!({ "type": "x" })).await;
    client.expect_error("Unknown message type").await;
    client.send_text("not json".into()).await;
    client.expect_error(FORMAT).await;
    client.send(&json!({ "type": "ping" })).await;
    client.expect_error(RATE).await;
    // The size check comes first even when over the rate.
    client.send_text(big).await;
    client.expect_error(TOO_LARGE).await;
    assert!(app.is_up().await);
}

#[tokio::test]
async fn bad_input_gets_the_right_error_stores_nothing_and_leaves_the_node_alive() {
    let app = notes_app().await;
    let sub = new_sub();
    let other = new_sub();
    let note_id = create_note(&app, &sub).await;
    let others_note = create_note(&app, &other).await;
    let before = stored(&app, &note_id).await;
    let mut client = NotesClient::signed_in(app.port, &sub).await;

    // Exactly 1 MiB + 1.
    let mut frame = format!("{{\"type\":\"note_update\",\"noteId\":\"{note_id}\",\"pad\":\"");
    let pad = 1024 * 1024 + 1 - frame.len() - 2;
    frame.push_str(&"x".repeat(pad));
    frame.push_str("\"}");
    assert_eq!(frame.len(), 1024 * 1024 + 1);
    client.send_text(frame).await;
    client.expect_error(TOO_LARGE).await;

    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    client.send_text(deep).await;
    client.expect_error(FORMAT).await;
    let deep_changes = format!(
        "{{\"type\":\"note_update\",\"noteId\":\"{note_id}\",\"changes\":{}{}}}",
        "{\"a\":".repeat(5_000),
        "1".to_owned() + &"}".repeat(5_000)
    );
    client.send_text(deep_changes).await;
    client.expect_error(FORMAT).await;

    let update =
        |changes: Value| json!({ "type": "note_update", "noteId": note_id, "changes": changes });
    client
        .send(&update(
            json!({ "__proto__": { "polluted": true }, "constructor": { "prototype": {} } }),
        ))
        .await;
    client.expect_error("No valid fields to update").await;
    for wrong in [
        json!({ "starred": "true" }),
        json!({ "archived": 1 }),
        json!({ "encryptedTitle": 7 }),
        json!({ "title": ["[ENCRYPTED]"] }),
        json!({ "folderId": { "$ne": null } }),
    ] {
        client.send(&update(wrong)).await;
        client.expect_error(FORMAT).await;
    }
    for wrong in [json!([1]), json!("changes"), json!(3)] {
        client.send(&update(wrong)).await;
        client.expect_error(FORMAT).await;
    }
    client
        .send(&json!({ "type": "note_update", "noteId": 12, "changes": { "starred": true } }))
        .await;
    client.expect_error(FORMAT).await;
    client
        .send(&json!({ "type": "note_update", "noteId": others_note, "changes": { "starred": true } }))
        .await;
    client.expect_error("Note not found or access denied").await;
    for id in ["' OR '1'='1", "1; DROP TABLE notes; --", "../../etc/passwd"] {
        client
            .send(&json!({ "type": "note_update", "noteId": id, "changes": { "starred": true } }))
            .await;
        client.expect_error("Note not found or access denied").await;
    }
    client
        .send(&update(
            json!({ "folderId": uuid::Uuid::new_v4().to_string() }),
        ))
        .await;
    client
        .expect_error("Folder not found or access denied")
        .await;
    client.send_text("[1,2]".into()).await;
    client.expect_error(FORMAT).await;
    client.send(&json!({ "type": 5 })).await;
    client.expect_error("Unknown message type").await;
    client.round_trip().await;

    assert_eq!(stored(&app, &note_id).await, before);
    assert!(!stored(&app, &others_note).await.starred);
    assert!(app.is_up().await);
}

#[tokio::test]
async fn graphql_manages_notes_and_folders_and_pushes_the_syncs_from_the_server() {
    let app = notes_app().await;
    let sub = new_sub();
    let bearer = token(&sub, 600);
    let mut device = NotesClient::signed_in(app.port, &sub).await;
    let ask = |query: &'static str, variables: Value| {
        let app = &app;
        let bearer = bearer.clone();
        async move { graphql_bearer(app, &bearer, query, variables).await }
    };
    let folder = ask(
        "mutation { createFolder(name: \"Home\") { id userId name parentId } }",
        json!({}),
    )
    .await;
    let folder = folder["data"]["createFolder"].clone();
    assert_eq!(folder["userId"], json!(sub));
    let created = device.expect_type("folder_created_sync").await;
    assert_eq!(created["fromUserId"], "server");
    assert_eq!(created["folderData"]["id"], folder["id"]);

    let refused = ask(
        "mutation { createNote(title: \"my diary\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let note = ask(
            "mutation($f: ID) { createNote(title: \"[ENCRYPTED]\", encryptedTitle: \"t\", folderId: $f) { id folderId createdAt } }",
            json!({ "f": folder["id"] }),
        )
        .await;
        ids.push(
            note["data"]["createNote"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
        assert_eq!(
            device.expect_type("note_created_sync").await["fromUserId"],
            "server"
        );
    }
    let page = ask("{ notes(first: 2) { id } }", json!({})).await;
    let first: Vec<&str> = page["data"]["notes"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert_eq!(first, vec![ids[2].as_str(), ids[1].as_str()]);
    let rest = ask(
        "query($a: ID) { notes(first: 2, after: $a) { id } }",
        json!({ "a": ids[1] }),
    )
    .await;
    assert_eq!(rest["data"]["notes"], json!([{ "id": ids[0] }]));

    let updated = ask(
        "mutation($id: ID!) { updateNote(id: $id, starred: true, encryptedContent: \"c\") { starred } }",
        json!({ "id": ids[0] }),
    )
    .await;
    assert_eq!(updated["data"]["updateNote"]["starred"], json!(true));
    let sync = device.expect_type("note_sync").await;
    assert_eq!(sync["fromUserId"], "server");
    assert_eq!(sync["changes"]["starred"], json!(true));
    assert_eq!(sync["updatedNote"]["encryptedContent"], json!("c"));

    // Another user sees none of it.
    let stranger = token(&new_sub(), 600);
    let theirs = graphql_bearer(
        &app,
        &stranger,
        "query($id: ID!) { note(id: $id) { id } notes { id } folders { id } }",
        json!({ "id": ids[0] }),
    )
    .await;
    assert_eq!(
        theirs["data"],
        json!({ "note": null, "notes": [], "folders": [] })
    );
    let steal = graphql_bearer(
        &app,
        &stranger,
        "mutation($id: ID!) { deleteNote(id: $id) }",
        json!({ "id": ids[0] }),
    )
    .await;
    assert_eq!(error_code(&steal), "NOT_FOUND");

    let deleted = ask(
        "mutation($id: ID!) { deleteNote(id: $id) }",
        json!({ "id": ids[0] }),
    )
    .await;
    assert_eq!(deleted["data"]["deleteNote"], json!(true));
    assert_eq!(
        device.expect_type("note_deleted_sync").await["noteId"],
        json!(ids[0])
    );
    let gone = ask(
        "mutation($id: ID!) { deleteFolder(id: $id) }",
        json!({ "id": folder["id"] }),
    )
    .await;
    assert_eq!(gone["data"]["deleteFolder"], json!(true));
    device.expect_type("folder_deleted_sync").await;
    let moved = ask(
        "query($id: ID!) { note(id: $id) { folderId } }",
        json!({ "id": ids[1] }),
    )
    .await;
    assert_eq!(moved["data"]["note"]["folderId"], Value::Null);
    device.round_trip().await;
}

#[tokio::test]
async fn devices_on_two_nodes_sync_through_redis_and_others_see_nothing() {
    let redis_url = std::env::var("TIDINGS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let (nodes, _dir) = spawn_cluster_with(2, &redis_url, |c| {
        c.jwt_hs256_secret = Some(JWT_SECRET.into());
    })
    .await;
    let sub = new_sub();
    let note_id = create_note(&nodes[0], &sub).await;
    let mut a = NotesClient::signed_in(nodes[0].port, &sub).await;
    let mut b = NotesClient::signed_in(nodes[1].port, &sub).await;
    let mut stranger = NotesClient::signed_in(nodes[1].port, &new_sub()).await;
    a.send_signed(
        &json!({ "type": "note_update", "noteId": note_id, "changes": { "hidden": true } }),
    )
    .await;
    a.expect_type("note_update_success").await;
    let sync = b.expect_type("note_sync").await;
    assert_eq!(sync["changes"]["hidden"], json!(true));
    a.send(&json!({ "type": "note_deleted", "noteId": note_id }))
        .await;
    b.expect_type("note_deleted_sync").await;
    a.round_trip().await;
    b.round_trip().await;
    stranger.round_trip().await;
}

/// The notes app's client sends no `seq`: a device that comes back while
/// none of its user's connections is open catches up on the syncs made
/// while it was away, from where the last connection stopped.
#[tokio::test]
async fn a_device_that_was_away_catches_up_on_the_syncs_it_missed() {
    let app = notes_app().await;
    let sub = new_sub();
    let bearer = token(&sub, 600);
    let user = tidings::auth::outside::user_id_for(&sub).expect("an outside id");
    let mut phone = NotesClient::signed_in(app.port, &sub).await;
    create_note(&app, &sub).await;
    phone.expect_type("note_created_sync").await;

    drop(phone);
    // Gone on the server's side too (the barrier: presence says offline).
    let mut online = true;
    for _ in 0..100 {
        let answer = graphql_bearer(
            &app,
            &bearer,
            "query($u: ID!) { isOnline(userId: $u) }",
            json!({ "u": user }),
        )
        .await;
        online = answer["data"]["isOnline"] == json!(true);
        if !online {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!online, "the phone's connection was never let go");
    let missed = [create_note(&app, &sub).await, create_note(&app, &sub).await];

    let mut phone = NotesClient::signed_in(app.port, &sub).await;
    let mut caught_up = Vec::new();
    while caught_up.len() < missed.len() {
        let sync = phone.expect_type("note_created_sync").await;
        assert_eq!(sync["fromUserId"], "server");
        if let Some(id) = sync["noteData"]["id"].as_str() {
            if missed.iter().any(|m| m == id) {
                caught_up.push(id.to_owned());
            }
        }
    }
    assert_eq!(caught_up, missed.to_vec());
}
