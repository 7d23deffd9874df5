//! What the social app's own web client reads (docs/protocol.md §8):
//! display names, `followed`, the flat message fields on `chatroom` and
//! `updatedChat`, read receipts and deleting messages.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const FOLLOW: &str = "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }";
const SEND: &str =
    "mutation($c: ID!, $t: String!) { sendMessage(chatroomId: $c, content: $t) { id } }";
const MARK_READ: &str = "mutation($c: ID!) { markChatroomRead(chatroomId: $c) }";
const DELETE: &str = "mutation($m: ID!) { deleteMessage(messageId: $m) }";
const MESSAGES: &str =
    "query($c: ID!) { messages(chatroomId: $c) { id read type senderName content } }";
const SET_NAME: &str = "mutation($n: String) { setName(name: $n) { id name username } }";

async fn send(app: &TestApp, from: &TestUser, chatroom: &str, text: &str) -> String {
    let data = app
        .graphql_ok(SEND, json!({ "c": chatroom, "t": text }), Some(from))
        .await;
    data["sendMessage"]["id"].as_str().expect("id").to_owned()
}

/// An acknowledged round trip: every push queued for `socket` before it
/// has arrived once it returns, so "nothing else came" can be checked
/// without waiting on a clock.
async fn barrier(socket: &mut SioClient) {
    let ack = socket
        .emit_with_ack("leaveRoom", &json!("topic:barrier"))
        .await;
    assert_eq!(ack, vec![json!({ "ok": true })]);
}

async fn nothing_more(socket: &mut SioClient, event: &str) {
    barrier(socket).await;
    socket.expect_none(event, Duration::ZERO).await;
}

#[tokio::test]
async fn a_name_given_at_sign_up_or_set_later_is_shown_cleaned_and_null_falls_back_to_the_username()
{
    let app = spawn_app().await;
    let data = app
        .graphql_ok(
            "mutation { signUp(username: \"zoe_named\", name: \" Zoë <b>B.</b><script>x</script> \") { id secretkey } }",
            json!({}),
            None,
        )
        .await;
    let zoe = TestUser {
        id: data["signUp"]["id"].as_str().expect("id").to_owned(),
        username: "zoe_named".to_owned(),
        secret: data["signUp"]["secretkey"]
            .as_str()
            .expect("secret")
            .to_owned(),
    };
    let me = app
        .graphql_ok("{ me { name username } }", json!({}), Some(&zoe))
        .await;
    assert_eq!(
        me["me"],
        json!({ "name": "Zoë B.", "username": "zoe_named" })
    );

    let bob = app.sign_up("bob").await;
    let me = app
        .graphql_ok("{ me { name } }", json!({}), Some(&bob))
        .await;
    assert_eq!(
        me["me"]["name"],
        json!(bob.username),
        "no name: the username"
    );

    let set = app
        .graphql_ok(SET_NAME, json!({ "n": "Bob & <i>Co</i>" }), Some(&bob))
        .await;
    assert_eq!(set["setName"]["name"], json!("Bob & Co"));
    let seen = app
        .graphql_ok(
            "query($id: ID!) { user(id: $id) { name } }",
            json!({ "id": bob.id }),
            Some(&zoe),
        )
        .await;
    assert_eq!(seen["user"]["name"], json!("Bob & Co"));

    let cleared = app
        .graphql_ok(SET_NAME, json!({ "n": null }), Some(&bob))
        .await;
    assert_eq!(cleared["setName"]["name"], json!(bob.username));
}

#[tokio::test]
async fn bad_names_are_refused_with_bad_user_input_and_change_nothing() {
    let app = spawn_app().await;
    let bob = app.sign_up("bob").await;
    app.graphql_ok(SET_NAME, json!({ "n": "Bob" }), Some(&bob))
        .await;
    let (long, huge) = ("n".repeat(65), "n".repeat(2000));
    for bad in [
        "",
        "   ",
        "<script>alert(1)</script>",
        "two\nlines",
        "tab\there",
        long.as_str(),
        huge.as_str(),
    ] {
        let response = app.graphql(SET_NAME, json!({ "n": bad }), Some(&bob)).await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{bad:?}: {response}"
        );
        let response = app
            .graphql(
                "mutation($u: String!, $n: String) { signUp(username: $u, name: $n) { id } }",
                json!({ "u": "never_made", "n": bad }),
                None,
            )
            .await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "signUp {bad:?}: {response}"
        );
    }
    let me = app
        .graphql_ok("{ me { name } }", json!({}), Some(&bob))
        .await;
    assert_eq!(me["me"]["name"], json!("Bob"));
    let nobody = app
        .graphql(
            "{ users(search: \"never_made\") { id } }",
            json!({}),
            Some(&bob),
        )
        .await;
    assert_eq!(nobody["data"]["users"], json!([]));
    let anonymous = app.graphql(SET_NAME, json!({ "n": "X" }), None).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

#[tokio::test]
async fn with_social_client_events_followed_carries_the_follower_beside_followed_on_follow_only() {
    let app = spawn_app_with(|c| c.social_client_events = true).await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    app.graphql_ok(SET_NAME, json!({ "n": "Alice A." }), Some(&alice))
        .await;
    let mut to_bob = app.authed_socket(&bob, Transport::WebSocket).await;
    let mut to_alice = app.authed_socket(&alice, Transport::Polling).await;

    app.graphql_ok(FOLLOW, json!({ "u": bob.id }), Some(&alice))
        .await;
    let old = to_bob.expect("Followed").await;
    assert_eq!(old["followerId"], json!(alice.id));
    assert_eq!(old["following"], json!(true));
    let new = to_bob.expect("followed").await;
    assert_eq!(new["id"], json!(alice.id));
    assert_eq!(
        new["follower"],
        json!({ "id": alice.id, "name": "Alice A.", "username": alice.username })
    );

    // Unfollowing keeps `Followed` false, and sends no `followed`.
    app.graphql_ok(FOLLOW, json!({ "u": bob.id }), Some(&alice))
        .await;
    assert_eq!(to_bob.expect("Followed").await["following"], json!(false));
    nothing_more(&mut to_bob, "followed").await;
    nothing_more(&mut to_alice, "followed").await;
}

#[tokio::test]
async fn without_social_client_events_a_follow_sends_followed_only() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mut to_bob = app.authed_socket(&bob, Transport::WebSocket).await;
    app.graphql_ok(FOLLOW, json!({ "u": bob.id }), Some(&alice))
        .await;
    assert_eq!(to_bob.expect("Followed").await["following"], json!(true));
    nothing_more(&mut to_bob, "followed").await;
}

#[tokio::test]
async fn chatroom_and_updated_chat_carry_the_flat_message_beside_the_nested_one() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let mut to_bob = app.authed_socket(&bob, Transport::WebSocket).await;
    let id = send(&app, &alice, &chatroom, "hi <b>bob</b>").await;

    let event = to_bob.expect("chatroom").await;
    let sender = json!({ "id": alice.id, "name": alice.username, "username": alice.username });
    assert_eq!(event["chatroomId"], json!(chatroom));
    assert_eq!(event["message"]["id"], json!(id));
    assert_eq!(event["message"]["senderId"], json!(alice.id));
    assert_eq!(event["message"]["senderUsername"], json!(alice.username));
    assert_eq!(event["message"]["content"], json!("hi bob"));
    assert_eq!(event["id"], json!(id));
    assert_eq!(event["sender"], sender);
    assert_eq!(event["content"], json!("hi bob"));
    assert_eq!(event["date"], event["message"]["createdAt"]);
    assert_eq!(event["read"], json!(false));
    assert_eq!(event["type"], json!("text"));

    let chat = to_bob.expect("updatedChat").await;
    assert_eq!(chat["lastMessage"], event["message"]);
    for field in ["id", "sender", "content", "date", "read", "type"] {
        assert_eq!(chat[field], event[field], "updatedChat.{field}");
    }
}

#[tokio::test]
async fn marking_a_chatroom_read_marks_the_others_messages_and_tells_every_member() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    send(&app, &alice, &chatroom, "one").await;
    let newest = send(&app, &alice, &chatroom, "two").await;
    let from_bob = send(&app, &bob, &chatroom, "three").await;
    let mut to_alice = app.authed_socket(&alice, Transport::WebSocket).await;

    let data = app
        .graphql_ok(MARK_READ, json!({ "c": chatroom }), Some(&bob))
        .await;
    assert_eq!(data["markChatroomRead"], json!(2));
    let messages = app
        .graphql_ok(MESSAGES, json!({ "c": chatroom }), Some(&alice))
        .await;
    let read: Vec<(Value, Value)> = messages["messages"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| (m["read"].clone(), m["type"].clone()))
        .collect();
    assert_eq!(
        read,
        vec![
            (json!(true), json!("text")),
            (json!(true), json!("text")),
            (json!(false), json!("text")),
        ],
        "bob's own message stays unread"
    );

    let event = to_alice.expect("chatroom").await;
    assert_eq!(event["type"], json!("read"));
    assert_eq!(event["id"], json!(newest));
    assert_eq!(event["read"], json!(true));
    assert_eq!(event["readBy"]["id"], json!(bob.id));
    assert_eq!(event["message"]["id"], json!(newest));
    let chat = to_alice.expect("updatedChat").await;
    assert_eq!(chat["type"], json!("read"));
    assert_eq!(chat["id"], json!(newest));
    assert_eq!(chat["lastMessage"]["id"], json!(from_bob));

    // Marking again changes and pushes nothing.
    let data = app
        .graphql_ok(MARK_READ, json!({ "c": chatroom }), Some(&bob))
        .await;
    assert_eq!(data["markChatroomRead"], json!(0));
    nothing_more(&mut to_alice, "chatroom").await;
}

#[tokio::test]
async fn mark_chatroom_read_refuses_outsiders_unknown_chatrooms_and_malformed_ids() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    send(&app, &alice, &chatroom, "private").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for (id, who, code) in [
        (chatroom.as_str(), Some(&carol), "NOT_FOUND"),
        (unknown.as_str(), Some(&bob), "NOT_FOUND"),
        ("not-an-id", Some(&bob), "BAD_USER_INPUT"),
        ("'; DROP TABLE messages; --", Some(&bob), "BAD_USER_INPUT"),
        (chatroom.as_str(), None, "UNAUTHENTICATED"),
    ] {
        let response = app.graphql(MARK_READ, json!({ "c": id }), who).await;
        assert_eq!(error_code(&response), code, "{id}: {response}");
    }
    let messages = app
        .graphql_ok(MESSAGES, json!({ "c": chatroom }), Some(&alice))
        .await;
    assert_eq!(
        messages["messages"][0]["read"],
        json!(false),
        "nothing was marked"
    );
}

#[tokio::test]
async fn deleting_ones_own_message_removes_it_and_tells_every_member() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let kept = send(&app, &alice, &chatroom, "kept").await;
    let gone = send(&app, &alice, &chatroom, "regretted").await;
    let mut to_bob = app.authed_socket(&bob, Transport::Polling).await;
    let mut to_alice = app.authed_socket(&alice, Transport::WebSocket).await;

    let data = app
        .graphql_ok(DELETE, json!({ "m": gone }), Some(&alice))
        .await;
    assert_eq!(data["deleteMessage"], json!(true));
    let messages = app
        .graphql_ok(MESSAGES, json!({ "c": chatroom }), Some(&bob))
        .await;
    let ids: Vec<&Value> = messages["messages"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, vec![&json!(kept)]);

    for socket in [&mut to_bob, &mut to_alice] {
        let event = socket.expect("chatroom").await;
        assert_eq!(event["type"], json!("deleted"));
        assert_eq!(event["id"], json!(gone));
        assert_eq!(event["sender"]["id"], json!(alice.id));
        assert_eq!(event["content"], json!(""), "the content is not sent again");
        assert_eq!(event["message"]["id"], json!(gone));
        let chat = socket.expect("updatedChat").await;
        assert_eq!(chat["type"], json!("deleted"));
        assert_eq!(chat["id"], json!(gone));
        assert_eq!(chat["lastMessage"]["id"], json!(kept));
    }
}

#[tokio::test]
async fn delete_message_refuses_someone_elses_unknown_outsiders_and_malformed_ids() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let message = send(&app, &alice, &chatroom, "mine").await;
    let mut to_alice = app.authed_socket(&alice, Transport::WebSocket).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for (id, who, code) in [
        (message.as_str(), Some(&bob), "BAD_USER_INPUT"),
        (message.as_str(), Some(&carol), "NOT_FOUND"),
        (unknown.as_str(), Some(&alice), "NOT_FOUND"),
        ("42", Some(&alice), "BAD_USER_INPUT"),
        (
            "<img src=x onerror=alert(1)>",
            Some(&alice),
            "BAD_USER_INPUT",
        ),
        (message.as_str(), None, "UNAUTHENTICATED"),
    ] {
        let response = app.graphql(DELETE, json!({ "m": id }), who).await;
        assert_eq!(error_code(&response), code, "{id}: {response}");
    }
    let messages = app
        .graphql_ok(MESSAGES, json!({ "c": chatroom }), Some(&alice))
        .await;
    assert_eq!(messages["messages"][0]["id"], json!(message), "still there");
    nothing_more(&mut to_alice, "chatroom").await;

    app.graphql_ok(DELETE, json!({ "m": message }), Some(&alice))
        .await;
    let again = app
        .graphql(DELETE, json!({ "m": message }), Some(&alice))
        .await;
    assert_eq!(error_code(&again), "NOT_FOUND", "deleting twice: {again}");
}
