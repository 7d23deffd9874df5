use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_200() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn readyz_answers_200_when_the_database_answers() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn readyz_answers_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.db.clone().close().await.expect("close pool");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.allowed_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.expect("request");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
    let other = preflight("https://evil.example.net")
        .await
        .expect("request");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
