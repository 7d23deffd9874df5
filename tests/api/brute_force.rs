//! Issue 16: one failed-authentication ledger for every credential path.
//! Guessing over GraphQL Basic auth is limited like guessing over sockets:
//! per address and per target user, refused before argon2 once over, while
//! the right secret from elsewhere still works.

use std::net::IpAddr;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

const ME: &str = "{ me { id } }";
const MAX_PER_ADDRESS: u32 = 5;

/// An HTTP client whose requests come from `addr` (any 127.x.y.z works on
/// the loopback interface).
fn client_from(addr: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(addr))
        .build()
        .expect("client")
}

async fn me_with(app: &TestApp, client: &reqwest::Client, id: &str, secret: &str) -> Value {
    client
        .post(app.url("/graphql"))
        .header("authorization", basic(id, secret))
        .json(&json!({ "query": ME }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

fn message(answer: &Value) -> &str {
    answer["errors"][0]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn two_hundred_wrong_secrets_over_graphql_from_one_address_are_mostly_refused_unverified() {
    let concurrency = 2;
    let app = spawn_app_with(|c| {
        c.max_failed_auth_per_address = MAX_PER_ADDRESS;
        c.argon2_concurrency = Some(concurrency);
    })
    .await;
    let alice = app.sign_up("alice").await;
    let guesser = client_from([127, 0, 0, 1]);
    let before = app.metric("tidings_argon2_verifications_total").await;

    let guesses = (0..200).map(|n| {
        let (app, guesser, id) = (&app, &guesser, alice.id.clone());
        async move { me_with(app, guesser, &id, &format!("wrong-{n}")).await }
    });
    let answers = join_all(guesses).await;

    let verified = app.metric("tidings_argon2_verifications_total").await - before;
    // Attempts already holding an argon2 slot when the limit is reached
    // finish: at most the limit plus the address's share of the slots.
    assert!(
        verified <= u64::from(MAX_PER_ADDRESS) + concurrency as u64,
        "{verified} verified"
    );
    let refused = answers
        .iter()
        .filter(|a| message(a).contains("too many failed authentication attempts"))
        .count();
    assert!(
        refused >= 200 - verified as usize,
        "{refused} refused unverified"
    );
    for answer in &answers {
        assert_eq!(error_code(answer), "UNAUTHENTICATED", "{answer}");
    }
    assert!(app.metric("tidings_auth_refused_unverified_total").await >= refused as u64);

    let blocked = me_with(&app, &guesser, &alice.id, &alice.secret).await;
    assert!(
        message(&blocked).contains("too many failed"),
        "the guessing address is refused even with the right secret: {blocked}"
    );
    let elsewhere = me_with(&app, &client_from([127, 0, 0, 2]), &alice.id, &alice.secret).await;
    assert_eq!(
        elsewhere["data"]["me"]["id"],
        json!(alice.id),
        "{elsewhere}"
    );
    hostile_report(
        "200 wrong secrets over GraphQL Basic from one address (limit 5, 2 argon2 slots)",
        "≤ 7 verified, the rest refused unverified; right secret from another address works",
        format!("{verified} verified, {refused} refused unverified; other address signed in"),
    );
}

#[tokio::test]
async fn malformed_graphql_credentials_count_towards_the_address_limit_too() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_address = MAX_PER_ADDRESS).await;
    let alice = app.sign_up("alice").await;
    let client = client_from([127, 0, 0, 3]);
    for _ in 0..MAX_PER_ADDRESS {
        let answer: Value = client
            .post(app.url("/graphql"))
            .header("authorization", "Bearer not-basic")
            .json(&json!({ "query": ME }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert_eq!(message(&answer), "wrong user id or secret");
    }
    let refused = me_with(&app, &client, &alice.id, &alice.secret).await;
    assert!(message(&refused).contains("too many failed"), "{refused}");
}

#[tokio::test]
async fn guesses_at_one_user_from_many_addresses_block_that_user_but_not_a_recently_verified_secret(
) {
    let app = spawn_app_with(|c| {
        c.max_failed_auth_per_address = 100;
        c.max_failed_auth_per_user = 6;
    })
    .await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    // Alice signs in once before the attack; bob has not yet.
    let home = client_from([127, 0, 1, 1]);
    let me = me_with(&app, &home, &alice.id, &alice.secret).await;
    assert_eq!(me["data"]["me"]["id"], json!(alice.id));

    for n in 0..6u8 {
        let attacker = client_from([127, 0, 2, n]);
        for target in [&alice, &bob] {
            let answer = me_with(&app, &attacker, &target.id, "wrong").await;
            assert_eq!(message(&answer), "wrong user id or secret", "{answer}");
        }
    }
    let before = app.metric("tidings_argon2_verifications_total").await;
    let blocked = me_with(&app, &home, &bob.id, &bob.secret).await;
    assert!(message(&blocked).contains("too many failed"), "{blocked}");
    let still_in = me_with(&app, &home, &alice.id, &alice.secret).await;
    assert_eq!(still_in["data"]["me"]["id"], json!(alice.id), "{still_in}");
    assert_eq!(
        app.metric("tidings_argon2_verifications_total").await,
        before,
        "neither answer ran argon2"
    );
    hostile_report(
        "12 wrong secrets at two users from 6 addresses (per-user limit 6)",
        "both users blocked, unverified; a recently verified secret still works",
        "not-yet-verified user refused, verified user signed in, 0 argon2 runs",
    );
}

#[tokio::test]
async fn sockets_and_graphql_share_one_ledger() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_address = 3).await;
    let alice = app.sign_up("alice").await;
    let from_here = client_from([127, 0, 0, 1]);
    for _ in 0..3 {
        let answer = me_with(&app, &from_here, &alice.id, "wrong").await;
        assert_eq!(message(&answer), "wrong user id or secret");
    }
    // The test's socket comes from 127.0.0.1 too.
    let mut socket = app.socket(Transport::WebSocket).await;
    socket.emit("initialConnection", &alice.credentials());
    let error = socket.expect("error").await;
    assert!(
        error["error"].as_str().is_some_and(
            |e| e.contains("too many failed authentication attempts from your address")
        ),
        "{error}"
    );
    assert_eq!(socket.expect("auth").await, json!(false));
}

#[tokio::test]
async fn wrong_cookie_secrets_over_graphql_count_in_the_same_ledger() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_address = 3).await;
    let alice = app.sign_up("alice").await;
    let client = client_from([127, 0, 0, 4]);
    for _ in 0..3 {
        let answer: Value = client
            .post(app.url("/graphql"))
            .header("cookie", format!("id={}; secretkey=wrong", alice.id))
            .json(&json!({ "query": ME }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        assert_eq!(message(&answer), "wrong user id or secret", "{answer}");
    }
    let refused = me_with(&app, &client, &alice.id, &alice.secret).await;
    assert!(message(&refused).contains("too many failed"), "{refused}");
}
