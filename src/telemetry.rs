//! Structured logging. `RUST_LOG` picks levels (default `info`); the format
//! is text for people or JSON for production pipelines.
//!
//! socketioxide and engineioxide log raw packets at `debug`, and an
//! `initialConnection` packet holds a secret. So they are held at `info`
//! unless `RUST_LOG` names them explicitly (someone debugging the transport
//! on purpose): `RUST_LOG=debug` alone never writes a secret to the logs.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

const TRANSPORT_CRATES: [&str; 2] = ["socketioxide", "engineioxide"];

pub fn init(format: LogFormat) {
    let registry = tracing_subscriber::registry().with(filter(std::env::var("RUST_LOG").ok()));
    // `try_init`: a second call (tests start many servers in one process)
    // keeps the first subscriber instead of panicking.
    let _already_set = match format {
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init(),
    };
}

fn filter(rust_log: Option<String>) -> EnvFilter {
    let mut directives = rust_log
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned());
    for krate in TRANSPORT_CRATES {
        if !directives.contains(krate) {
            directives.push_str(&format!(",{krate}=info"));
        }
    }
    EnvFilter::try_new(&directives).unwrap_or_else(|err| {
        eprintln!("RUST_LOG {directives:?} is invalid ({err}); logging at info");
        EnvFilter::new("info")
    })
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn transport_crates_stay_at_info_unless_named() {
        let f = filter(Some("debug".into())).to_string();
        assert!(
            f.contains("socketioxide=info") && f.contains("engineioxide=info"),
            "{f}"
        );
        let f = filter(Some("debug,socketioxide=trace".into())).to_string();
        assert!(
            f.contains("socketioxide=trace") && !f.contains("socketioxide=info"),
            "{f}"
        );
    }
}
