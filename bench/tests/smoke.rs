//! Every scenario at N=20 against a Tidings this test starts (binary from
//! `TIDINGS_BIN`, else `target/debug/tidings`). Asserts only that each
//! scenario completes and produces rows: no timing assertions. The peer and
//! the floor are not started here. The scenarios on two nodes (cluster,
//! jitter, avalanche, log-cost) run when PostgreSQL and Redis answer
//! (`BENCH_POSTGRES_URL`, `BENCH_REDIS_URL`); jitter lasts 4 s there.

use std::path::PathBuf;
use std::time::Duration;

use tidings_bench::delivery::{self, DurableSettings};
use tidings_bench::report::Row;
use tidings_bench::scenarios::{self, Db, Settings};
use tidings_bench::seed;
use tidings_bench::servers::{self, Target};

const N: usize = 20;

fn settings() -> Option<Settings> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = std::env::var_os("TIDINGS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/debug/tidings"));
    if !bin.exists() {
        eprintln!(
            "skipping: no Tidings binary at {} (set TIDINGS_BIN or build it)",
            bin.display()
        );
        return None;
    }
    servers::raise_fd_limit(65536);
    Some(Settings {
        db: Db::Sqlite,
        tidings_bin: bin,
        floor_bin: servers::default_floor_bin(),
        pg_admin_url: std::env::var("BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        redis_cluster_nodes: None,
        redis_url: std::env::var("BENCH_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        rate: 20,
        seconds: 1,
        pairs: 5,
        pushes: 3,
        concurrency: 16,
        phase_limit: Duration::from_secs(120),
        hash: seed::hash_secret().expect("hash"),
        durable: DurableSettings {
            jitter_secs: 4,
            up: Duration::from_secs(2),
            down: Duration::from_millis(500),
            push_rate: 20,
            batch: 5,
            log_depths: vec![1, 3],
        },
        resume_window_secs: None,
        server_env: Vec::new(),
    })
}

fn check(name: &str, rows: &[Row]) {
    assert!(!rows.is_empty(), "{name} produced no rows");
    assert!(rows.iter().all(|r| r.n == N), "{name}: {rows:?}");
    println!("{}", tidings_bench::report::table(rows));
}

async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_at_small_n() {
    let Some(s) = settings() else { return };
    let t = Target::Tidings;
    check("idle", &scenarios::idle(&s, t, N).await.expect("idle"));
    check(
        "auth-storm",
        &scenarios::auth_storm(&s, t, N).await.expect("auth-storm"),
    );
    check(
        "push-latency",
        &scenarios::push_latency(&s, t, N)
            .await
            .expect("push-latency"),
    );
    check(
        "fanout",
        &scenarios::fanout(&s, t, N).await.expect("fanout"),
    );
    // The plain WebSocket clients (issue 12).
    use tidings_bench::servers::Target as T;
    check(
        "idle-jwt plain",
        &scenarios::idle_jwt(&s, T::TidingsPlain, N)
            .await
            .expect("idle-jwt"),
    );
    let rows = scenarios::fanout(&s, T::TidingsMixed, N)
        .await
        .expect("fanout mixed");
    check("fanout mixed", &rows);
    assert!(
        rows.iter()
            .any(|r| r.metric == "delivered" && r.value > 0.0),
        "{rows:?}"
    );
    check(
        "jwt-storm plain",
        &scenarios::jwt_storm(&s, T::TidingsPlain, N)
            .await
            .expect("jwt-storm"),
    );
    if reachable("127.0.0.1:5432").await && reachable("127.0.0.1:6379").await {
        let rows = scenarios::cluster(&s, t, N, N).await.expect("cluster");
        check("cluster", &rows);
        assert!(rows.iter().any(|r| r.scenario == "cluster-fanout"));
        let rows = delivery::jitter(&s, t, N).await.expect("jitter");
        check("jitter", &rows);
        assert!(rows.iter().any(|r| r.metric == "delivered"));
        let rows = delivery::avalanche(&s, t, N).await.expect("avalanche");
        check("avalanche", &rows);
        assert!(rows.iter().any(|r| r.metric == "pushes_lost"));
        let rows = delivery::log_cost(&s, t, N).await.expect("log-cost");
        check("log-cost", &rows);
        assert!(rows.iter().any(|r| r.metric == "bytes_per_push"));
    } else {
        eprintln!("cluster skipped: PostgreSQL or Redis not reachable");
    }
}
