//! §3: GraphQL operations, credentials and error codes.

use sea_orm::EntityTrait;
use serde_json::{json, Value};

use crate::helpers::*;

const SIGN_UP: &str = "mutation($u: String!) { signUp(username: $u) { id username secretkey } }";
const SEND: &str =
    "mutation($c: ID!, $t: String!) { sendMessage(chatroomId: $c, content: $t) { id content } }";

#[tokio::test]
async fn sign_up_returns_a_generated_secret_that_authenticates() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    assert!(alice.secret.len() >= 43, "32 random bytes of URL-safe text");
    assert!(alice
        .secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let data = app
        .graphql_ok("{ me { id username } }", json!({}), Some(&alice))
        .await;
    assert_eq!(data["me"]["id"], json!(alice.id));
}

#[tokio::test]
async fn only_the_argon2id_hash_of_the_secret_is_stored() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let stored = entity::user::Entity::find_by_id(alice.uuid())
        .one(&app.db)
        .await
        .expect("query")
        .expect("row");
    assert!(
        stored.secret_hash.starts_with("$argon2id$"),
        "{}",
        stored.secret_hash
    );
    assert!(!stored.secret_hash.contains(&alice.secret));
}

#[tokio::test]
async fn sign_up_refuses_bad_and_taken_usernames_with_bad_user_input() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    for bad in [
        "ab",
        &"x".repeat(33),
        "has space",
        "<script>",
        "émile",
        "semi;colon",
        &alice.username,
    ] {
        let response = app.graphql(SIGN_UP, json!({ "u": bad }), None).await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{bad}: {response}");
        assert!(response["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn operations_that_need_a_user_fail_unauthenticated_without_or_with_wrong_credentials() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let wrong = TestUser {
        secret: "wrong-secret".into(),
        ..alice.clone()
    };
    let malformed = TestUser {
        id: "not-a-uuid".into(),
        ..alice.clone()
    };
    let operations = [
        ("{ me { id } }", json!({})),
        ("{ chatrooms { id } }", json!({})),
        ("mutation { rotateSecret { id } }", json!({})),
        ("mutation { deleteAccount }", json!({})),
        (
            "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }",
            json!({ "u": alice.id }),
        ),
    ];
    for (query, variables) in &operations {
        for caller in [None, Some(&wrong), Some(&malformed)] {
            let response = app.graphql(query, variables.clone(), caller).await;
            assert_eq!(
                error_code(&response),
                "UNAUTHENTICATED",
                "{query} as {caller:?}: {response}"
            );
        }
    }
    // Nothing happened to alice.
    app.graphql_ok("{ me { id } }", json!({}), Some(&alice))
        .await;
}

#[tokio::test]
async fn cookies_authenticate_graphql_from_no_origin_or_an_allowed_one() {
    let app = spawn_app_with(|c| c.allowed_origins = vec!["https://app.example.com".into()]).await;
    let alice = app.sign_up("alice").await;
    let cookie = format!("id={}; secretkey={}", alice.id, alice.secret);
    let me = |origin: Option<&'static str>| {
        let mut request = app
            .http
            .post(app.url("/graphql"))
            .header("cookie", cookie.clone())
            .json(&json!({ "query": "{ me { id } }" }));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move {
            request
                .send()
                .await
                .expect("request")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    assert_eq!(me(None).await["data"]["me"]["id"], json!(alice.id));
    assert_eq!(
        me(Some("https://app.example.com")).await["data"]["me"]["id"],
        json!(alice.id)
    );
    assert_eq!(
        error_code(&me(Some("https://evil.example.net")).await),
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn bad_ids_and_arguments_fail_with_bad_user_input_saying_what_is_wrong() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let cases = [
        (
            "mutation { followUnfollowUser(userId: \"nope\") { following } }",
            "userId",
        ),
        (
            "mutation { getLocation(userId: \"1; DROP TABLE users\") { id } }",
            "userId",
        ),
        (
            "mutation { sendMessage(chatroomId: \"x\", content: \"hi\") { id } }",
            "chatroomId",
        ),
        ("{ users(first: 0) { id } }", "first"),
        ("{ users(first: 101) { id } }", "first"),
        ("{ user(id: \"<b>\") { id } }", "id"),
    ];
    for (query, mentions) in cases {
        let response = app.graphql(query, json!({}), Some(&alice)).await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{query}: {response}"
        );
        let message = response["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(mentions), "{query}: {message}");
    }
    let response = app
        .graphql(
            "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }",
            json!({ "u": alice.id }),
            Some(&alice),
        )
        .await;
    assert_eq!(
        error_code(&response),
        "BAD_USER_INPUT",
        "following yourself"
    );
}

#[tokio::test]
async fn empty_or_oversized_messages_are_refused() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    for content in [
        "",
        "   ",
        "<script>only a script</script>",
        &"a".repeat(4001),
    ] {
        let response = app
            .graphql(SEND, json!({ "c": chatroom, "t": content }), Some(&alice))
            .await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT", "{}", content.len());
    }
    let data = app
        .graphql_ok(
            SEND,
            json!({ "c": chatroom, "t": "a".repeat(4000) }),
            Some(&alice),
        )
        .await;
    assert_eq!(
        data["sendMessage"]["content"].as_str().map(str::len),
        Some(4000)
    );
}

#[tokio::test]
async fn non_members_can_neither_send_to_nor_read_a_chatroom() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mallory = app.sign_up("mallory").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    app.graphql_ok(SEND, json!({ "c": chatroom, "t": "private" }), Some(&alice))
        .await;
    let mut to_alice = app.authed_socket(&alice, Transport::WebSocket).await;

    let response = app
        .graphql(
            SEND,
            json!({ "c": chatroom, "t": "let me in" }),
            Some(&mallory),
        )
        .await;
    assert_eq!(error_code(&response), "NOT_FOUND");
    let response = app
        .graphql(
            "query($c: ID!) { messages(chatroomId: $c) { content } }",
            json!({ "c": chatroom }),
            Some(&mallory),
        )
        .await;
    assert_eq!(error_code(&response), "NOT_FOUND");
    assert!(
        response["data"].is_null() || response["data"]["messages"].is_null(),
        "{response}"
    );
    let data = app
        .graphql_ok("{ chatrooms { id } }", json!({}), Some(&mallory))
        .await;
    assert_eq!(data["chatrooms"], json!([]));
    to_alice.expect_none("chatroom", QUIET).await;
}

#[tokio::test]
async fn messages_page_backwards_with_the_newest_last() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    for n in 1..=5 {
        app.graphql_ok(
            SEND,
            json!({ "c": chatroom, "t": format!("m{n}") }),
            Some(&alice),
        )
        .await;
    }
    let page = |before: Value| {
        app.graphql_ok(
            "query($c: ID!, $b: ID) { messages(chatroomId: $c, before: $b, last: 2) { id content senderUsername } }",
            json!({ "c": chatroom, "b": before }),
            Some(&bob),
        )
    };
    let newest = page(Value::Null).await["messages"].clone();
    assert_eq!(newest[0]["content"], "m4");
    assert_eq!(newest[1]["content"], "m5");
    assert_eq!(newest[1]["senderUsername"], json!(alice.username));
    let older = page(newest[0]["id"].clone()).await["messages"].clone();
    assert_eq!(older[0]["content"], "m2");
    assert_eq!(older[1]["content"], "m3");
}

#[tokio::test]
async fn queries_answer_about_users_follows_chatrooms_and_presence() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    app.graphql_ok(
        "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }",
        json!({ "u": alice.id }),
        Some(&bob),
    )
    .await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let query = "query($a: ID!, $b: ID!, $s: String!) {
        user(id: $a) { username online }
        users(search: $s, first: 5) { id }
        followers(userId: $a) { id }
        following(userId: $b) { id }
        chatrooms { id direct memberIds members { username } }
        isOnline(userId: $a)
    }";
    let vars = json!({ "a": alice.id, "b": bob.id, "s": alice.username[..7].to_uppercase() });
    let data = app.graphql_ok(query, vars.clone(), Some(&bob)).await;
    assert_eq!(data["user"]["username"], json!(alice.username));
    assert_eq!(data["users"], json!([{ "id": alice.id }]));
    assert_eq!(data["followers"], json!([{ "id": bob.id }]));
    assert_eq!(data["following"], json!([{ "id": alice.id }]));
    assert_eq!(data["chatrooms"][0]["id"], json!(chatroom));
    assert_eq!(data["chatrooms"][0]["direct"], json!(true));
    assert_eq!(data["isOnline"], json!(false));
    assert_eq!(data["user"]["online"], json!(false));

    let socket = app.authed_socket(&alice, Transport::WebSocket).await;
    let data = app.graphql_ok(query, vars.clone(), Some(&bob)).await;
    assert_eq!(data["isOnline"], json!(true));
    socket.disconnect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.graphql_ok(query, vars.clone(), Some(&bob)).await["isOnline"] == json!(true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice stayed online after disconnecting"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn users_search_treats_like_wildcards_literally() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    app.sign_up("bob").await;
    let data = app
        .graphql_ok("{ users(search: \"%\") { id } }", json!({}), Some(&alice))
        .await;
    assert_eq!(data["users"], json!([]));
    let data = app
        .graphql_ok("{ users(search: \"_\") { id } }", json!({}), Some(&alice))
        .await;
    assert_eq!(
        data["users"].as_array().map(Vec::len),
        Some(2),
        "both names hold a literal _"
    );
}

#[tokio::test]
async fn batches_deep_queries_and_floods_of_aliased_mutations_are_refused() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;

    let batch = json!([{ "query": "{ me { id } }" }, { "query": "{ me { id } }" }]);
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("Authorization", basic(&alice.id, &alice.secret))
        .json(&batch)
        .send()
        .await
        .expect("request");
    assert!(
        response.status().is_client_error(),
        "batch answered {}",
        response.status()
    );

    let nested = "{ chatrooms { members { username } lastMessage { id } } }";
    app.graphql_ok(nested, json!({}), Some(&alice)).await;
    // Deep introspection mixed with a data field stays under the data limit.
    let too_deep = "query { me { id } __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }";
    let response = app.graphql(too_deep, json!({}), Some(&alice)).await;
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nested too deep")),
        "{response}"
    );

    let flood: String = (0..100)
        .map(|i| format!("a{i}: signUp(username: \"flood_{i}\") {{ id }} "))
        .collect();
    let response = app
        .graphql(&format!("mutation {{ {flood} }}"), json!({}), None)
        .await;
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("too complex")),
        "{response}"
    );
    let data = app
        .graphql_ok(
            "{ users(search: \"flood_\") { id } }",
            json!({}),
            Some(&alice),
        )
        .await;
    assert_eq!(data["users"], json!([]), "no mutation of the flood ran");
}

#[tokio::test]
async fn oversized_graphql_bodies_get_413() {
    let app = spawn_app().await;
    let body = json!({ "query": "{ me { id } }", "variables": { "pad": "x".repeat(300 * 1024) } });
    let response = app
        .http
        .post(app.url("/graphql"))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn graphiql_is_served_on_get() {
    let app = spawn_app().await;
    let response = app.get("/graphql").await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.expect("body").contains("graphiql"));
}

#[tokio::test]
async fn internal_errors_never_leak_database_text() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    app.db.clone().close().await.expect("close pool");
    let response = app.graphql("{ me { id } }", json!({}), Some(&alice)).await;
    let text = response.to_string().to_lowercase();
    for leak in ["sqlx", "sqlite", "postgres", "pool", "connection"] {
        assert!(!text.contains(leak), "{response}");
    }
}

#[tokio::test]
async fn arguments_of_the_wrong_type_or_missing_fail_with_bad_user_input() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    for query in [
        "{ users(first: \"ten\") { id } }",
        "{ users(first: 99999999999) { id } }",
        "mutation { sendMessage(content: \"no chatroom\") { id } }",
        "{ me { id noSuchField } }",
        "{ me { id ",
    ] {
        let response = app.graphql(query, json!({}), Some(&alice)).await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{query}: {response}"
        );
    }
}

/// The query graphql-js `getIntrospectionQuery` builds with every option on
/// (what GraphiQL and other tools send to load a schema): 13 levels deep.
const TOOL_INTROSPECTION: &str = include_str!("fixtures/graphql-js-introspection.graphql");

#[tokio::test]
async fn the_introspection_query_graphiql_sends_is_answered_with_the_default_limits() {
    let app = spawn_app().await;

    let data = app.graphql_ok(TOOL_INTROSPECTION, json!({}), None).await;

    assert_eq!(data["__schema"]["queryType"]["name"], "QueryRoot");
    let types = data["__schema"]["types"].as_array().expect("types");
    let user = types
        .iter()
        .find(|t| t["name"] == "User")
        .expect("the User type is described");
    assert!(user["fields"]
        .as_array()
        .is_some_and(|fields| fields.iter().any(|f| f["name"] == "username")));
}

#[tokio::test]
async fn a_deep_query_that_is_not_only_introspection_is_still_refused() {
    let app = spawn_app_with(|config| config.graphql_max_depth = 2).await;
    let alice = app.sign_up("alice").await;

    app.graphql_ok("{ me { id } }", json!({}), Some(&alice))
        .await;
    for too_deep in [
        "{ chatrooms { members { username } } }",
        "{ __typename chatrooms { members { username } } }",
        "query Q { ...Data } fragment Data on Query { chatrooms { members { id } } }",
    ] {
        let response = app.graphql(too_deep, json!({}), Some(&alice)).await;
        assert!(
            response["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nested too deep")),
            "{too_deep}: {response}"
        );
    }
}

#[tokio::test]
async fn introspection_past_its_own_depth_limit_is_refused() {
    let app = spawn_app().await;
    let of_type = |levels: usize| {
        format!(
            "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
            "ofType { ".repeat(levels),
            " }".repeat(levels)
        )
    };

    app.graphql_ok(&of_type(10), json!({}), None).await;
    let response = app.graphql(&of_type(17), json!({}), None).await;

    assert!(
        response["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nested too deep")),
        "{response}"
    );
}

#[tokio::test]
async fn introspection_is_refused_when_switched_off() {
    let app = spawn_app_with(|config| config.graphql_introspection = false).await;

    let response = app.graphql(TOOL_INTROSPECTION, json!({}), None).await;

    assert!(response.get("errors").is_some(), "{response}");
    assert!(
        response["data"].is_null() || response["data"]["__schema"].is_null(),
        "{response}"
    );
}
