//! §2.2: each push reaches every socket of each target user, and no one else.

use serde_json::json;

use crate::helpers::*;

const FOLLOW: &str =
    "mutation($u: ID!) { followUnfollowUser(userId: $u) { following user { id } } }";
const SEND: &str =
    "mutation($c: ID!, $t: String!) { sendMessage(chatroomId: $c, content: $t) { id content } }";

#[tokio::test]
async fn one_user_with_several_sockets_gets_every_push_on_every_socket() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mut sockets = vec![
        app.authed_socket(&alice, Transport::WebSocket).await,
        app.authed_socket(&alice, Transport::WebSocket).await,
        app.authed_socket(&alice, Transport::Polling).await,
    ];
    app.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    for socket in &mut sockets {
        let event = socket.expect("Followed").await;
        assert_eq!(event["followerId"], json!(bob.id));
        assert_eq!(event["followerUsername"], json!(bob.username));
        assert_eq!(event["following"], json!(true));
        assert!(
            event["timestamp"]
                .as_i64()
                .is_some_and(|t| t > 1_600_000_000_000),
            "{event}"
        );
    }
}

#[tokio::test]
async fn followed_goes_to_the_followed_user_only_and_says_unfollow_too() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let mut to_alice = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut to_bob = app.authed_socket(&bob, Transport::WebSocket).await;
    let mut to_carol = app.authed_socket(&carol, Transport::Polling).await;
    let mut anonymous = app.socket(Transport::WebSocket).await;

    let data = app
        .graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    assert_eq!(data["followUnfollowUser"]["following"], json!(true));
    assert_eq!(to_alice.expect("Followed").await["following"], json!(true));

    let data = app
        .graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    assert_eq!(data["followUnfollowUser"]["following"], json!(false));
    assert_eq!(to_alice.expect("Followed").await["following"], json!(false));

    to_bob.expect_none("Followed", QUIET).await;
    to_carol.expect_none("Followed", QUIET).await;
    anonymous.expect_none("Followed", QUIET).await;
}

#[tokio::test]
async fn creating_a_direct_chatroom_pushes_updated_chat_to_both_members_only() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let mut to_alice = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut to_bob = app.authed_socket(&bob, Transport::Polling).await;
    let mut to_carol = app.authed_socket(&carol, Transport::WebSocket).await;

    let chatroom = app.direct_chatroom(&alice, &bob).await;
    for socket in [&mut to_alice, &mut to_bob] {
        let event = socket.expect("updatedChat").await;
        assert_eq!(event["chatroomId"], json!(chatroom));
        assert_eq!(event["lastMessage"], json!(null));
        let mut members: Vec<String> =
            serde_json::from_value(event["memberIds"].clone()).expect("memberIds is a list of ids");
        members.sort();
        let mut expected = vec![alice.id.clone(), bob.id.clone()];
        expected.sort();
        assert_eq!(members, expected);
    }
    to_carol.expect_none("updatedChat", QUIET).await;

    // Asking again returns the same chatroom and announces nothing new.
    assert_eq!(app.direct_chatroom(&bob, &alice).await, chatroom);
    to_alice.expect_none("updatedChat", QUIET).await;
}

#[tokio::test]
async fn send_message_pushes_chatroom_and_updated_chat_to_every_member_only() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let mut to_alice = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut to_bob = app.authed_socket(&bob, Transport::Polling).await;
    let mut to_carol = app.authed_socket(&carol, Transport::WebSocket).await;

    let data = app
        .graphql_ok(
            SEND,
            json!({ "c": chatroom, "t": "hello bob" }),
            Some(&alice),
        )
        .await;
    let message_id = data["sendMessage"]["id"].clone();
    for socket in [&mut to_alice, &mut to_bob] {
        let event = socket.expect("chatroom").await;
        assert_eq!(event["chatroomId"], json!(chatroom));
        let message = &event["message"];
        assert_eq!(message["id"], message_id);
        assert_eq!(message["chatroomId"], json!(chatroom));
        assert_eq!(message["senderId"], json!(alice.id));
        assert_eq!(message["senderUsername"], json!(alice.username));
        assert_eq!(message["content"], json!("hello bob"));
        assert!(message["createdAt"].as_i64().is_some());

        let update = socket.expect("updatedChat").await;
        assert_eq!(update["chatroomId"], json!(chatroom));
        assert_eq!(update["lastMessage"]["id"], message_id);
    }
    to_carol.expect_none("chatroom", QUIET).await;
    to_carol.expect_none("updatedChat", QUIET).await;
}

#[tokio::test]
async fn message_content_is_cleaned_of_markup_and_plain_text_is_kept() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let mut to_bob = app.authed_socket(&bob, Transport::WebSocket).await;
    let cases = [
        ("<script>alert('x')</script>hi", "hi"),
        (r#"<img src=x onerror="alert(1)">pic"#, "pic"),
        (r#"<a href="javascript:alert(1)">link</a>"#, "link"),
        (r#"5 < 6 & "quotes""#, r#"5 < 6 & "quotes""#),
        ("&lt;script&gt;alert(1)&lt;/script&gt;sneaky", "sneaky"),
    ];
    for (sent, kept) in cases {
        let data = app
            .graphql_ok(SEND, json!({ "c": chatroom, "t": sent }), Some(&alice))
            .await;
        assert_eq!(data["sendMessage"]["content"], json!(kept), "{sent}");
        let pushed = to_bob.expect("chatroom").await;
        assert_eq!(pushed["message"]["content"], json!(kept), "{sent}");
    }
    let data = app
        .graphql_ok(
            "query($c: ID!) { messages(chatroomId: $c) { content } }",
            json!({ "c": chatroom }),
            Some(&bob),
        )
        .await;
    let stored: Vec<&str> = data["messages"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(stored, cases.map(|(_, kept)| kept));
}

#[tokio::test]
async fn rotate_secret_unbinds_every_socket_with_auth_false_and_the_old_secret_stops_working() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mut sockets = vec![
        app.authed_socket(&alice, Transport::WebSocket).await,
        app.authed_socket(&alice, Transport::Polling).await,
    ];
    let data = app
        .graphql_ok(
            "mutation { rotateSecret { id secretkey } }",
            json!({}),
            Some(&alice),
        )
        .await;
    let new_secret = data["rotateSecret"]["secretkey"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new_secret, alice.secret);
    for socket in &mut sockets {
        assert_eq!(socket.expect("auth").await, json!(false));
    }
    assert_eq!(app.stored_socket_id(&alice).await, None);

    // Unbound: no more pushes.
    app.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    for socket in &mut sockets {
        socket.expect_none("Followed", QUIET).await;
    }
    // The old secret fails (even though it was verified, and cached, a moment ago).
    let mut fresh = app.socket(Transport::WebSocket).await;
    fresh.emit("initialConnection", &alice.credentials());
    assert_eq!(fresh.expect("auth").await, json!(false));
    let response = app.graphql("{ me { id } }", json!({}), Some(&alice)).await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");
    // The new one works.
    let rotated = TestUser {
        secret: new_secret,
        ..alice.clone()
    };
    app.authed_socket(&rotated, Transport::WebSocket).await;
}

#[tokio::test]
async fn delete_account_disconnects_every_socket_and_removes_what_was_theirs() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    app.graphql_ok(SEND, json!({ "c": chatroom, "t": "bye" }), Some(&alice))
        .await;
    app.graphql_ok(FOLLOW, json!({ "u": bob.id }), Some(&alice))
        .await;
    let mut sockets = vec![
        app.authed_socket(&alice, Transport::WebSocket).await,
        app.authed_socket(&alice, Transport::Polling).await,
    ];
    let mut bystander = app.authed_socket(&bob, Transport::WebSocket).await;

    let data = app
        .graphql_ok("mutation { deleteAccount }", json!({}), Some(&alice))
        .await;
    assert_eq!(data["deleteAccount"], json!(true));
    for socket in &mut sockets {
        socket.expect_closed().await;
    }
    assert!(!bystander.is_closed());

    let data = app
        .graphql_ok(
            "query($u: ID!, $c: ID!) { user(id: $u) { id } followers(userId: $u) { id } messages(chatroomId: $c) { id } }",
            json!({ "u": bob.id, "c": chatroom }),
            Some(&bob),
        )
        .await;
    assert_eq!(data["followers"], json!([]));
    assert_eq!(data["messages"], json!([]));
    let response = app.graphql("{ me { id } }", json!({}), Some(&alice)).await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");
    bystander.expect_none("auth", QUIET).await;
}
