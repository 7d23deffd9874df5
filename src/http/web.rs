//! The web app at `/`, and GraphiQL at `GET /graphql`.
//!
//! Both are files embedded in the binary (`web/`, and the client library
//! `clients/js/src/` under `/client/`), so a fresh `cargo run` serves a
//! working chat with no build step and no CDN: socket.io-client, GraphiQL
//! and React are vendored in `web/vendor/` with their licenses. With
//! `--static-dir` an operator's own directory replaces the app (GraphiQL
//! stays embedded).
//!
//! Embedded files are looked up by exact name in a table built at compile
//! time, so no request path can reach the file system. A static directory
//! is served by tower-http's `ServeDir`, which refuses `..`; in front of it
//! `StaticDir` also refuses any path whose real location (symlinks
//! followed) is outside the directory, which `ServeDir` does not check.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use rust_embed::RustEmbed;
use tower::ServiceExt;
use tower_http::services::ServeDir;

#[derive(RustEmbed)]
#[folder = "web/"]
struct WebApp;

#[derive(RustEmbed)]
#[folder = "clients/js/src/"]
#[prefix = "client/"]
struct ClientLibrary;

/// Pages may load scripts, styles and images only from here and talk only
/// to this origin (WebSocket included): markup that slipped through
/// escaping could not load or send anything elsewhere. GraphiQL 1 sets
/// inline styles, hence `'unsafe-inline'` for styles only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// GraphiQL 1's bundle evaluates strings (webpack's `Function("return
/// this")`), so its page alone also allows `'unsafe-eval'`; it shows no
/// user content but what the schema and the results hold.
const GRAPHIQL_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
     script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// `GET /graphql`: the GraphiQL page, whatever `--static-dir` says.
pub async fn graphiql() -> Response {
    embedded_file("graphiql.html")
}

/// Everything no other route took, when no `--static-dir` is set.
pub async fn embedded(request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    if path.starts_with("admin/") {
        // The operator view's files: only through its own routes, which are
        // off without an API key.
        return StatusCode::NOT_FOUND.into_response();
    }
    embedded_file(if path.is_empty() { "index.html" } else { path })
}

pub(super) fn embedded_file(path: &str) -> Response {
    let Some(file) = WebApp::get(path).or_else(|| ClientLibrary::get(path)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mime = file.metadata.mimetype();
    let mut response = Body::from(file.data).into_response();
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    // Ask the browser to revalidate: a new binary must not run old scripts.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let policy = if path == "graphiql.html" {
        GRAPHIQL_CONTENT_SECURITY_POLICY
    } else {
        CONTENT_SECURITY_POLICY
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    response
}

/// An operator's directory served at `/` (`--static-dir`).
#[derive(Clone)]
pub struct StaticDir {
    /// Canonical (symlinks resolved), so containment is a prefix check.
    root: Arc<PathBuf>,
    serve: ServeDir,
}

impl StaticDir {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        Ok(Self {
            serve: ServeDir::new(&root),
            root: Arc::new(root),
        })
    }

    /// The file a URL path names, or `None` when it tries to climb out
    /// (`..`, an absolute or drive path, an undecodable name).
    fn candidate(&self, uri_path: &str) -> Option<PathBuf> {
        let decoded = percent_decode_str(uri_path).decode_utf8().ok()?;
        let mut path = self.root.to_path_buf();
        for part in decoded.split('/') {
            if part.is_empty() || part == "." {
                continue;
            }
            let mut components = Path::new(part).components();
            match (components.next(), components.next()) {
                (Some(Component::Normal(name)), None) => path.push(name),
                _ => return None,
            }
        }
        Some(path)
    }

    /// Whether serving `uri_path` stays inside the directory once symlinks
    /// are followed. A path that does not exist is "inside": `ServeDir`
    /// answers it with 404.
    async fn contains(&self, uri_path: &str) -> bool {
        let Some(mut path) = self.candidate(uri_path) else {
            return false;
        };
        if tokio::fs::metadata(&path)
            .await
            .is_ok_and(|meta| meta.is_dir())
        {
            // Contain the directory itself and the index.html it would serve.
            match tokio::fs::canonicalize(&path).await {
                Ok(real) if real.starts_with(&*self.root) => {}
                Ok(_) => return false,
                Err(_) => return true,
            }
            path.push("index.html");
        }
        match tokio::fs::canonicalize(&path).await {
            Ok(real) => real.starts_with(&*self.root),
            Err(_) => true,
        }
    }
}

/// Everything no other route took, when `--static-dir` is set.
pub async fn static_dir(State(dir): State<StaticDir>, request: Request) -> Response {
    if !dir.contains(request.uri().path()).await {
        tracing::info!(path = %request.uri().path(), "static path outside the directory refused");
        return StatusCode::NOT_FOUND.into_response();
    }
    match dir.serve.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}
