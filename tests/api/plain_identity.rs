//! Who a plain connection is (docs/protocol.md §10.4): JWTs (HS256, RS256
//! by PEM, ES256 by JWKS `kid`) in a header, the query, a cookie or in
//! band; trusted identity headers; each accepted and refused.

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use sea_orm::EntityTrait;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::plain_client::PlainClient;

const SECRET: &str = "an-hs256-secret-of-32-bytes-or-more!";

fn fixture(name: &str) -> String {
    format!("{}/tests/api/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn now_secs() -> i64 {
    entity::now_ms() / 1000
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": now_secs() + 600, "aud": "tidings", "iss": "idp" })
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

async fn jwt_app() -> TestApp {
    spawn_app_with(|c| {
        c.jwt_hs256_secret = Some(SECRET.into());
        c.jwt_public_key_file = Some(fixture("rsa-public.pem"));
        c.jwt_jwks_file = Some(fixture("jwks.json"));
        c.jwt_audience = Some("tidings".into());
        c.jwt_issuer = Some("idp".into());
        c.jwt_cookie = Some("session_jwt".into());
        c.allowed_origins = vec!["https://app.example".into()];
    })
    .await
}

/// The user id an in-band `auth` of `token` is answered with.
async fn signed_in_as(app: &TestApp, token: &str) -> Value {
    let mut client = PlainClient::connect(app.port, "/ws", &[]).await;
    client
        .send(&json!({ "type": "auth", "token": token }))
        .await;
    let answer = client.next().await;
    answer
}

#[tokio::test]
async fn a_jwt_is_accepted_from_a_header_the_query_a_cookie_or_in_band() {
    let app = jwt_app().await;
    let token = hs256(&claims("user_2abc"));
    let bearer = format!("Bearer {token}");
    let cookie = format!("other=1; session_jwt={token}");
    let carriers: [(String, Vec<(&str, &str)>); 3] = [
        ("/ws".into(), vec![("authorization", bearer.as_str())]),
        (format!("/ws?token={token}"), vec![]),
        (
            "/ws".into(),
            vec![
                ("cookie", cookie.as_str()),
                ("origin", "https://app.example"),
            ],
        ),
    ];
    for (path, headers) in carriers {
        let mut client = PlainClient::connect(app.port, &path, &headers).await;
        // Signed in already: a join needs a user.
        client.send(&json!({ "joinRoom": "topic:lobby" })).await;
        client.round_trip().await;
    }
    let answer = signed_in_as(&app, &token).await;
    assert_eq!(answer["type"], "auth_success", "{answer}");
    let user = answer["userId"].as_str().expect("a user id").to_owned();
    assert_ne!(user, "user_2abc", "an outside id is mapped to a UUID");
    let row = entity::user::Entity::find_by_id(uuid::Uuid::parse_str(&user).expect("uuid"))
        .one(&app.db)
        .await
        .expect("query");
    assert_eq!(row.map(|r| r.username), Some("ext:user_2abc".to_owned()));

    let refused = PlainClient::try_connect(
        app.port,
        "/ws",
        &[
            ("cookie", cookie.as_str()),
            ("origin", "https://evil.example"),
        ],
    )
    .await
    .err()
    .expect("a cookie from another origin is refused");
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_by_pem_and_by_jwks_kid() {
    let app = jwt_app().await;
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).expect("key"))
        .expect("rsa key");
    let rs256 = encode(
        &Header::new(Algorithm::RS256),
        &claims("github:ferbs"),
        &rsa,
    )
    .expect("token");
    assert_eq!(signed_in_as(&app, &rs256).await["type"], "auth_success");

    let ec = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).expect("key"))
        .expect("ec key");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let es256 = encode(&header, &claims("github:ferbs"), &ec).expect("token");
    assert_eq!(signed_in_as(&app, &es256).await["type"], "auth_success");
    header.kid = Some("unknown".into());
    let unknown_kid = encode(&header, &claims("github:ferbs"), &ec).expect("token");
    assert_eq!(
        signed_in_as(&app, &unknown_kid).await["type"],
        "auth_failed"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_on_the_upgrade_and_in_band() {
    let app = jwt_app().await;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let mut expired = claims("u1");
    expired["exp"] = json!(now_secs() - 120);
    let mut early = claims("u1");
    early["nbf"] = json!(now_secs() + 600);
    let mut wrong_audience = claims("u1");
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = claims("u1");
    wrong_issuer["iss"] = json!("mallory");
    let wrong_signature = encode(
        &Header::new(Algorithm::HS256),
        &claims("u1"),
        &EncodingKey::from_secret(b"another-secret-of-32-bytes-or-more!!"),
    )
    .expect("token");
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&claims("u1"))
    );
    // The classic confusion: HS256 "signed" with the RSA public key.
    let public_pem = std::fs::read(fixture("rsa-public.pem")).expect("key");
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("u1"),
        &EncodingKey::from_secret(&public_pem),
    )
    .expect("token");
    let cases = [
        ("expired", hs256(&expired)),
        ("not yet valid", hs256(&early)),
        ("wrong audience", hs256(&wrong_audience)),
        ("wrong issuer", hs256(&wrong_issuer)),
        ("wrong signature", wrong_signature),
        ("alg none", alg_none),
        ("HS256 with the RSA public key", confused),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in cases {
        let bearer = format!("Bearer {token}");
        let refused =
            PlainClient::try_connect(app.port, "/ws", &[("authorization", bearer.as_str())])
                .await
                .err()
                .unwrap_or_else(|| panic!("{what}: the upgrade must be refused"));
        assert_eq!(refused.status, 401, "{what}");
        let answer = signed_in_as(&app, &token).await;
        assert_eq!(answer["type"], "auth_failed", "{what}: {answer}");
    }
}

#[tokio::test]
async fn a_rooms_claim_grants_rooms_and_read_only_viewers_cannot_relay() {
    let app = jwt_app().await;
    let room = "topic:canvas-9";
    let mut editor_claims = claims("editor");
    editor_claims["rooms"] = json!([room]);
    let mut viewer_claims = claims("viewer");
    viewer_claims["rooms"] = json!([{ "room": room, "publish": false }]);
    let editor_token = hs256(&editor_claims);
    let viewer_token = hs256(&viewer_claims);
    let mut editor =
        PlainClient::connect(app.port, &format!("/ws?token={editor_token}"), &[]).await;
    let mut viewer =
        PlainClient::connect(app.port, &format!("/ws?token={viewer_token}"), &[]).await;
    viewer.round_trip().await;

    let draw = |n: i64| json!({ "type": "DRAW", "timestamp": entity::now_ms(), "payload": { "n": n }, "room": room });
    viewer.send(&draw(1)).await;
    let refused = viewer.expect_type("error").await;
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("only listen")),
        "{refused}"
    );
    editor.round_trip().await;

    editor.send(&draw(2)).await;
    let heard = viewer.expect_type("DRAW").await;
    assert_eq!(heard["payload"], json!({ "n": 2 }));
}

#[tokio::test]
async fn a_trusted_header_is_honoured_only_from_a_trusted_proxy() {
    let untrusted = spawn_app_with(|c| c.trusted_user_header = Some("x-auth-user".into())).await;
    let refused =
        PlainClient::try_connect(untrusted.port, "/ws", &[("x-auth-user", "github:ferbs")])
            .await
            .err()
            .expect("a header from an untrusted address is refused");
    assert_eq!(refused.status, 401);

    let app = spawn_app_with(|c| {
        c.trusted_user_header = Some("x-auth-user".into());
        c.trusted_guest_header = Some("x-auth-guest".into());
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let mut ferbs = PlainClient::connect(app.port, "/ws", &[("x-auth-user", "github:ferbs")]).await;
    ferbs.send(&json!({ "joinRoom": "topic:lobby" })).await;
    ferbs.round_trip().await;
    let mut guest = PlainClient::connect(app.port, "/ws", &[("x-auth-guest", "g-1")]).await;
    guest.send(&json!({ "joinRoom": "topic:lobby" })).await;
    guest.round_trip().await;

    // A backend push names the outside id; the plain connection gets it once.
    let (status, answer) = app
        .api_push(
            Some(API_KEY),
            json!({ "users": ["github:ferbs"], "data": { "n": 1 } }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(ferbs.next().await, json!({ "n": 1 }));
    ferbs.round_trip().await;
    guest.round_trip().await;
}

#[tokio::test]
async fn a_push_to_an_outside_user_reaches_their_plain_connection_and_socket_io_tabs_once() {
    let app = jwt_app().await;
    let token = hs256(&claims("github:ferbs"));
    let mut plain = PlainClient::connect(app.port, &format!("/ws?token={token}"), &[]).await;
    plain.round_trip().await;
    // Socket.IO: the JWT in the handshake `auth`, or in `initialConnection`.
    let mut by_handshake = app
        .socket_with(
            Transport::WebSocket,
            ConnectOptions {
                auth: Some(json!({ "token": token })),
                ..ConnectOptions::default()
            },
        )
        .await;
    assert_eq!(by_handshake.expect("auth").await, json!(true));
    let mut by_event = app.socket(Transport::WebSocket).await;
    by_event.emit("initialConnection", &json!({ "token": token }));
    assert_eq!(by_event.expect("auth").await, json!(true));
    let mut refused = app.socket(Transport::WebSocket).await;
    refused.emit("initialConnection", &json!({ "token": "not.a.token" }));
    assert_eq!(refused.expect("auth").await, json!(false));

    let (status, answer) = app
        .api_push(
            Some(API_KEY),
            json!({ "users": ["github:ferbs"], "data": { "n": 7 } }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(plain.next().await, json!({ "n": 7 }));
    plain.round_trip().await;
    for socket in [&mut by_handshake, &mut by_event] {
        assert_eq!(socket.expect("push").await, json!({ "n": 7 }));
        // A barrier: the ack of a later request comes after any duplicate.
        socket
            .emit_with_ack("joinRoom", &json!("topic:barrier"))
            .await;
        socket.expect_none("push", std::time::Duration::ZERO).await;
    }
}

#[tokio::test]
async fn graphql_accepts_the_same_jwt_as_a_bearer_token() {
    let app = jwt_app().await;
    let token = hs256(&claims("github:ferbs"));
    let ask = |token: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": "{ me { id username } }" }))
                .send()
                .await
                .expect("request")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let me = ask(token.clone()).await;
    assert_eq!(me["data"]["me"]["username"], "ext:github:ferbs", "{me}");
    // The plain connection of the same token is the same user.
    let answer = signed_in_as(&app, &token).await;
    assert_eq!(answer["userId"], me["data"]["me"]["id"]);

    let mut expired = claims("github:ferbs");
    expired["exp"] = json!(now_secs() - 120);
    let refused = ask(hs256(&expired)).await;
    assert!(refused["errors"].is_array(), "{refused}");
    assert!(
        refused["data"].is_null() || refused["data"]["me"].is_null(),
        "{refused}"
    );
}
