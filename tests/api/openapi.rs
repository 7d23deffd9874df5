//! `/api/openapi.json`. That the live server keeps to it is checked by
//! schemathesis in scripts/test; here only that it is served and whole.

use crate::helpers::*;

#[tokio::test]
async fn the_openapi_document_is_served_and_names_the_http_api() {
    let app = spawn_app().await;
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: serde_json::Value = response.json().await.expect("JSON");
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    for path in ["/api/push", "/healthz", "/readyz"] {
        assert!(document["paths"].get(path).is_some(), "{path} missing");
    }
}
