//! Issue 16: each signed-in user has an allowance of GraphQL mutations
//! (`--mutations-per-minute`, `--mutations-burst`). Past it a request runs
//! nothing and says `RATE_LIMITED` with a retry hint; other users, queries
//! and bad settings are handled as the docs say.

use serde_json::{json, Value};

use crate::helpers::*;

const FOLLOW: &str = "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }";
const FOLLOWERS: &str = "query($u: ID!) { followers(userId: $u) { id } }";

fn extensions(answer: &Value) -> &Value {
    &answer["errors"][0]["extensions"]
}

#[tokio::test]
async fn mutations_past_the_burst_are_refused_with_rate_limited_and_a_retry_hint() {
    let app = spawn_app_with(|c| {
        c.mutations_per_minute = 60;
        c.mutations_burst = 3;
    })
    .await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    for _ in 0..3 {
        app.graphql_ok(FOLLOW, json!({ "u": bob.id }), Some(&alice))
            .await;
    }
    // Three toggles: alice follows bob now.
    let refused = app
        .graphql(FOLLOW, json!({ "u": bob.id }), Some(&alice))
        .await;
    assert_eq!(extensions(&refused)["code"], "RATE_LIMITED", "{refused}");
    let retry = extensions(&refused)["retryAfterMs"]
        .as_u64()
        .expect("a retry hint");
    assert!(
        (1..=1000).contains(&retry),
        "one token a second: {retry} ms"
    );
    hostile_report(
        "4th mutation of one user within a burst of 3 (60/min)",
        "RATE_LIMITED, retryAfterMs ≤ 1000, nothing runs",
        format!("{}, retryAfterMs {retry}", error_code(&refused)),
    );
    assert!(refused["data"].is_null(), "{refused}");

    // Nothing ran: still following. Queries are not limited.
    let followers = app
        .graphql_ok(FOLLOWERS, json!({ "u": bob.id }), Some(&alice))
        .await;
    assert_eq!(followers["followers"], json!([{ "id": alice.id }]));
    // Another user has an allowance of their own.
    app.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
}

#[tokio::test]
async fn aliased_mutations_each_count_and_a_request_bigger_than_the_burst_never_fits() {
    let app = spawn_app_with(|c| c.mutations_burst = 3).await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let four = "mutation($u: ID!) { a: followUnfollowUser(userId: $u) { following } \
                b: followUnfollowUser(userId: $u) { following } \
                c: followUnfollowUser(userId: $u) { following } \
                d: followUnfollowUser(userId: $u) { following } }";
    let refused = app
        .graphql(four, json!({ "u": bob.id }), Some(&alice))
        .await;
    assert_eq!(extensions(&refused)["code"], "RATE_LIMITED", "{refused}");
    assert!(extensions(&refused)["retryAfterMs"].is_null(), "{refused}");
    assert!(refused["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("4 mutations")));

    let three = "mutation($u: ID!) { a: followUnfollowUser(userId: $u) { following } \
                 b: followUnfollowUser(userId: $u) { following } \
                 c: followUnfollowUser(userId: $u) { following } }";
    app.graphql_ok(three, json!({ "u": bob.id }), Some(&alice))
        .await;
    let refused = app
        .graphql(FOLLOW, json!({ "u": bob.id }), Some(&alice))
        .await;
    assert_eq!(
        extensions(&refused)["code"],
        "RATE_LIMITED",
        "the three used the burst"
    );
}

#[tokio::test]
async fn a_zero_mutation_rate_or_burst_is_refused_at_start() {
    for configure in [
        (|c: &mut tidings::Config| c.mutations_per_minute = 0) as fn(&mut tidings::Config),
        |c: &mut tidings::Config| c.mutations_burst = 0,
    ] {
        let mut config = tidings::Config::for_database("sqlite::memory:");
        configure(&mut config);
        let err = config.validate().expect_err("refused");
        assert!(err.to_string().contains("--mutations-"), "{err}");
    }
}
