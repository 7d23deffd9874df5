//! The web app at `/`, GraphiQL's page, and `--static-dir`.

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// A GET sent byte for byte as written: HTTP clients normalise `..` and
/// `%2e%2e` away before sending, which would hide what the server does.
async fn raw_get(app: &TestApp, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

#[tokio::test]
async fn the_web_app_and_the_scripts_it_needs_are_served_from_the_binary() {
    let app = spawn_app().await;

    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html")));
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("CSP")
        .to_owned();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    assert!(page
        .text()
        .await
        .expect("body")
        .contains("<title>Tidings</title>"));

    for script in [
        "/app.js",
        "/client/index.js",
        "/vendor/socket.io.min.js",
        "/graphiql.js",
        "/vendor/graphiql.min.js",
    ] {
        let response = app.get(script).await;
        assert_eq!(response.status(), 200, "{script}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .is_ok_and(|t| t.contains("javascript")),
            "{script}"
        );
    }
    let graphiql = app.get("/graphql").await.text().await.expect("body");
    assert!(graphiql.contains("/vendor/graphiql.min.js"), "{graphiql}");
    assert_eq!(app.get("/no-such-file.js").await.status(), 404);
}

#[tokio::test]
async fn paths_that_climb_out_of_the_embedded_app_find_nothing() {
    let app = spawn_app().await;
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/vendor/../../Cargo.toml",
        "/vendor/%2e%2e%2f%2e%2e%2fCargo.toml",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
    ] {
        let (status, body) = raw_get(&app, path).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(
            !body.contains("[workspace]") && !body.contains("root:"),
            "{path}"
        );
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write file");
}

#[tokio::test]
async fn a_static_dir_replaces_the_web_app_and_graphiql_stays() {
    let site = tempfile::tempdir().expect("temp dir");
    write(&site.path().join("index.html"), "<p>our own app</p>");
    std::fs::create_dir(site.path().join("docs")).expect("mkdir");
    write(&site.path().join("docs").join("a.txt"), "inside");
    let root = site.path().to_owned();
    let app = spawn_app_with(|config| config.static_dir = Some(root)).await;

    assert!(app
        .get("/")
        .await
        .text()
        .await
        .expect("body")
        .contains("our own app"));
    assert_eq!(
        app.get("/docs/a.txt").await.text().await.expect("body"),
        "inside"
    );
    assert_eq!(
        app.get("/app.js").await.status(),
        404,
        "not the embedded app"
    );
    assert!(app
        .get("/graphql")
        .await
        .text()
        .await
        .expect("body")
        .contains("graphiql"));
}

#[tokio::test]
async fn static_dir_paths_cannot_escape_it_by_dots_encodings_absolute_paths_or_symlinks() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let site = tmp.path().join("site");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&site).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    write(&site.join("index.html"), "home");
    write(&tmp.path().join("secret.txt"), "SECRET-PARENT");
    write(&outside.join("secret.txt"), "SECRET-OUTSIDE");
    write(&outside.join("index.html"), "SECRET-INDEX");
    std::os::unix::fs::symlink(outside.join("secret.txt"), site.join("link.txt")).expect("symlink");
    std::os::unix::fs::symlink(&outside, site.join("linkdir")).expect("symlink");
    let app = spawn_app_with(|config| config.static_dir = Some(site.clone())).await;

    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/docs/../../secret.txt",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        &format!("/{}", tmp.path().join("secret.txt").display()),
        "/link.txt",
        "/linkdir/secret.txt",
        "/linkdir/",
        "/linkdir",
    ] {
        let (status, body) = raw_get(&app, path).await;
        assert!(
            !body.contains("SECRET") && !body.contains("root:"),
            "{path} leaked: {body}"
        );
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    assert_eq!(raw_get(&app, "/").await.0, 200);
}

#[tokio::test]
async fn a_static_dir_that_is_not_a_directory_stops_the_start() {
    let mut config = tidings::Config::for_database("sqlite::memory:");
    config.static_dir = Some("/no/such/directory".into());

    let error = match tidings::Application::build(config).await {
        Ok(_) => panic!("started with a missing --static-dir"),
        Err(error) => error.to_string(),
    };

    assert!(error.contains("--static-dir"), "{error}");
}
