//! `tidings-bench`: runs the benchmark scenarios against Tidings, the Node.js
//! peer (`bench/peer`) and the floor (`bench-floor`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use tidings_bench::delivery::{self, DurableSettings};
use tidings_bench::report::{self, Row};
use tidings_bench::scenarios::{self, Db, Settings};
use tidings_bench::servers::{self, Target};
use tidings_bench::{doc, seed};

#[derive(Parser)]
#[command(about = "Benchmarks for Tidings, a Node.js socket.io peer and a bare WebSocket floor")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// N authenticated idle connections: server RSS per connection, setup time.
    Idle(Common),
    /// `idle`, Tidings connections signed in with a JWT (no argon2 memory
    /// in the figure). Use `--target tidings-plain,tidings`.
    IdleJwt(Common),
    /// N sockets authenticate at once, cold (fresh server) then warm (reconnect).
    AuthStorm(Common),
    /// N connections open, then all sign in at once with a JWT, cold (first
    /// sight of each user) then warm. Use `--target tidings-plain,tidings`.
    JwtStorm(Common),
    /// sendMessage at a steady rate; latency until the recipient's `chatroom`.
    PushLatency(Common),
    /// N sockets in topic:bench; /api/push K times; deliveries/s and latency.
    Fanout(Common),
    /// push-latency and fanout on two Tidings nodes (PostgreSQL + Redis).
    Cluster(Common),
    /// Connections closed every ~15 s, back ~2 s later on the other node,
    /// pushes flowing (two nodes, Redis): delivered, duplicates, order.
    /// `--n` defaults to BENCH_JITTER_N or 10000, `--seconds` to 120.
    Jitter(Common),
    /// Every client of one node loses it at once (SIGKILL) and reconnects to
    /// the other with socket.io-client's backoff. `--n` defaults to
    /// BENCH_AVALANCHE_N or 20000 (capped by the open-file limit).
    Avalanche(Common),
    /// SIGTERM on one of three nodes: its clients are let go over its
    /// drain window and reconnect to the other two. `--n` defaults to
    /// BENCH_DRAIN_N or 5000 (capped by the open-file limit).
    Drain(Common),
    /// Bytes per retained push in Redis (`MEMORY USAGE`). `--n` (users)
    /// defaults to BENCH_LOG_USERS or 1000.
    LogCost(Common),
    /// push-latency and fanout on two nodes, on one Redis and on a Redis
    /// Cluster (`--redis-cluster-nodes`), in one run.
    RedisTopologies(Common),
    /// Note sync (`/notes`): `--n` idle users, `--pairs` users with two
    /// devices; note_update → note_sync latency at `--rate`, then updates/s
    /// in a closed loop (`--seconds` each), on `--db`.
    NoteSync(Common),
    /// Every scenario, with per-scenario sizes.
    All(AllArgs),
    /// Writes docs/benchmarks.md (and PNG charts) from a results CSV.
    Doc(DocArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Connections / users (default 1000; see each scenario).
    #[arg(long)]
    n: Option<usize>,
    /// Servers to measure (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tidings")]
    target: Vec<Target>,
    /// Database of a single Tidings node (the peer and clusters use PostgreSQL).
    #[arg(long, value_enum, env = "BENCH_DB", default_value = "postgres")]
    db: Db,
    #[arg(long, env = "TIDINGS_BIN")]
    tidings_bin: Option<PathBuf>,
    #[arg(long, env = "BENCH_FLOOR_BIN")]
    floor_bin: Option<PathBuf>,
    /// A PostgreSQL database to connect to for CREATE DATABASE.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    #[arg(
        long,
        env = "BENCH_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// redis-topologies: seeds of the Redis Cluster to compare with one
    /// Redis (`scripts/redis-topologies up cluster` starts this one).
    #[arg(
        long,
        env = "BENCH_REDIS_CLUSTER_NODES",
        default_value = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103"
    )]
    redis_cluster_nodes: String,
    /// push-latency: sendMessage requests per second.
    #[arg(long, env = "BENCH_RATE", default_value_t = 200)]
    rate: u32,
    /// push-latency: seconds of sending (default 10); jitter: seconds of
    /// jitter (default 120).
    #[arg(long, env = "BENCH_SECONDS")]
    seconds: Option<u64>,
    /// jitter: mean seconds a connection stays up (uniform over ½–1½ of it).
    #[arg(long, env = "BENCH_JITTER_UP_SECS", default_value_t = 15.0)]
    up_secs: f64,
    /// jitter: mean seconds a client stays away (uniform over ¾–1¼ of it).
    #[arg(long, env = "BENCH_JITTER_DOWN_SECS", default_value_t = 2.0)]
    down_secs: f64,
    /// jitter, avalanche: POST /api/push requests per second.
    #[arg(long, env = "BENCH_PUSH_RATE", default_value_t = 100)]
    push_rate: u32,
    /// jitter, avalanche: users per push request (at most 100).
    #[arg(long, env = "BENCH_PUSH_BATCH", default_value_t = 10)]
    push_batch: usize,
    /// log-cost: pushes per user at each measuring point.
    #[arg(
        long,
        env = "BENCH_LOG_DEPTHS",
        value_delimiter = ',',
        default_value = "1,10,100"
    )]
    log_depths: Vec<u32>,
    /// TIDINGS_RESUME_WINDOW_SECS for the servers (default: theirs, 120).
    #[arg(long, env = "BENCH_RESUME_WINDOW_SECS")]
    resume_window_secs: Option<u64>,
    /// push-latency: sender/recipient pairs.
    #[arg(long, env = "BENCH_PAIRS", default_value_t = 100)]
    pairs: usize,
    /// fanout: pushes sent at once.
    #[arg(long, env = "BENCH_PUSHES", default_value_t = 50)]
    pushes: u32,
    /// Connections set up at once.
    #[arg(long, env = "BENCH_CONCURRENCY", default_value_t = 256)]
    concurrency: usize,
    /// Longest any setup phase may take, in seconds.
    #[arg(long, env = "BENCH_PHASE_LIMIT_SECS", default_value_t = 900)]
    phase_limit_secs: u64,
    /// CSV to write (default: bench/results/<unix time>.csv).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct AllArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "BENCH_IDLE_N", default_value_t = 30000)]
    idle_n: usize,
    #[arg(long, env = "BENCH_STORM_N", default_value_t = 2000)]
    storm_n: usize,
    #[arg(long, env = "BENCH_PUSH_N", default_value_t = 10000)]
    push_n: usize,
    #[arg(long, env = "BENCH_FANOUT_N", default_value_t = 10000)]
    fanout_n: usize,
    #[arg(long, env = "BENCH_JITTER_N", default_value_t = 10000)]
    jitter_n: usize,
    /// Seconds of jitter in `all` (`--seconds` is push-latency's there).
    #[arg(long, env = "BENCH_JITTER_SECS", default_value_t = 120)]
    jitter_secs: u64,
    #[arg(long, env = "BENCH_AVALANCHE_N", default_value_t = 20000)]
    avalanche_n: usize,
    #[arg(long, env = "BENCH_LOG_USERS", default_value_t = 1000)]
    log_users: usize,
    /// Use this size for every scenario instead.
    #[arg(long)]
    all_n: Option<usize>,
    /// Also write this markdown report (with charts beside it).
    #[arg(long)]
    doc: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct DocArgs {
    #[arg(long)]
    csv: PathBuf,
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// The command line that produced the CSV, for the report.
    #[arg(long, default_value = "scripts/bench")]
    command: String,
}

fn settings(c: &Common, jitter_secs: u64) -> Result<Settings> {
    eprintln!("hashing the shared secret (argon2id m=19456 t=2 p=1), once per run");
    Ok(Settings {
        db: c.db,
        tidings_bin: c
            .tidings_bin
            .clone()
            .unwrap_or_else(servers::default_tidings_bin),
        floor_bin: c
            .floor_bin
            .clone()
            .unwrap_or_else(servers::default_floor_bin),
        pg_admin_url: c.postgres_url.clone(),
        redis_url: c.redis_url.clone(),
        redis_cluster_nodes: None,
        rate: c.rate,
        seconds: c.seconds.unwrap_or(10),
        pairs: c.pairs,
        pushes: c.pushes,
        concurrency: c.concurrency,
        phase_limit: Duration::from_secs(c.phase_limit_secs),
        hash: seed::hash_secret()?,
        durable: DurableSettings {
            jitter_secs,
            up: Duration::from_secs_f64(c.up_secs.max(0.1)),
            down: Duration::from_secs_f64(c.down_secs.max(0.0)),
            push_rate: c.push_rate,
            batch: c.push_batch,
            log_depths: c.log_depths.clone(),
        },
        resume_window_secs: c.resume_window_secs,
        server_env: Vec::new(),
    })
}

/// Runs one scenario on each target; a failing target is reported and skipped.
async fn run(
    name: &str,
    s: &Settings,
    targets: &[Target],
    rows: &mut Vec<Row>,
    f: impl AsyncFn(&Settings, Target) -> Result<Vec<Row>>,
) {
    for &t in targets {
        eprintln!("== {name} on {}", t.name());
        match f(s, t).await {
            Ok(r) => rows.extend(r),
            Err(e) => {
                eprintln!("!! {name} on {} failed: {e:#}", t.name());
                rows.push(Row::new(name, t.name(), 0, "failed", 1.0, "flag"));
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let limit = servers::raise_fd_limit(1 << 20);
    eprintln!("open-file limit: {limit}");
    let mut rows = Vec::new();
    let (common, doc_out) = match &cli.command {
        Cmd::Doc(a) => {
            let rows = report::parse_csv(&std::fs::read_to_string(&a.csv)?);
            doc::write(&rows, &a.out, &a.command)?;
            eprintln!("wrote {}", a.out.display());
            return Ok(());
        }
        Cmd::All(a) => (a.common.clone(), a.doc.clone()),
        Cmd::Idle(c)
        | Cmd::IdleJwt(c)
        | Cmd::AuthStorm(c)
        | Cmd::JwtStorm(c)
        | Cmd::PushLatency(c)
        | Cmd::Fanout(c)
        | Cmd::Cluster(c)
        | Cmd::RedisTopologies(c)
        | Cmd::Jitter(c)
        | Cmd::Avalanche(c)
        | Cmd::Drain(c)
        | Cmd::LogCost(c)
        | Cmd::NoteSync(c) => (c.clone(), None),
    };
    let jitter_secs = match &cli.command {
        Cmd::All(a) => a.jitter_secs,
        _ => common.seconds.unwrap_or(120),
    };
    let s = settings(&common, jitter_secs)?;
    let targets = common.target.clone();
    let n_or = |name: &str, default: usize| {
        common.n.unwrap_or_else(|| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        })
    };
    let n = common.n.unwrap_or(1000);
    match &cli.command {
        Cmd::Idle(_) => {
            run("idle", &s, &targets, &mut rows, async |s, t| {
                scenarios::idle(s, t, n).await
            })
            .await
        }
        Cmd::IdleJwt(_) => {
            run("idle-jwt", &s, &targets, &mut rows, async |s, t| {
                scenarios::idle_jwt(s, t, n).await
            })
            .await
        }
        Cmd::AuthStorm(_) => {
            run("auth-storm", &s, &targets, &mut rows, async |s, t| {
                scenarios::auth_storm(s, t, n).await
            })
            .await
        }
        Cmd::JwtStorm(_) => {
            run("jwt-storm", &s, &targets, &mut rows, async |s, t| {
                scenarios::jwt_storm(s, t, n).await
            })
            .await
        }
        Cmd::PushLatency(_) => {
            run("push-latency", &s, &targets, &mut rows, async |s, t| {
                scenarios::push_latency(s, t, n).await
            })
            .await
        }
        Cmd::Fanout(_) => {
            run("fanout", &s, &targets, &mut rows, async |s, t| {
                scenarios::fanout(s, t, n).await
            })
            .await
        }
        Cmd::Cluster(_) => {
            run("cluster", &s, &targets, &mut rows, async |s, t| {
                scenarios::cluster(s, t, n, n).await
            })
            .await
        }
        Cmd::RedisTopologies(c) => {
            let seeds = c.redis_cluster_nodes.clone();
            run("redis-topologies", &s, &targets, &mut rows, async |s, t| {
                scenarios::redis_topologies(s, t, n, &seeds).await
            })
            .await
        }
        Cmd::Jitter(_) => {
            let n = n_or("BENCH_JITTER_N", 10000);
            run("jitter", &s, &targets, &mut rows, async |s, t| {
                delivery::jitter(s, t, n).await
            })
            .await
        }
        Cmd::Drain(_) => {
            let n = n_or("BENCH_DRAIN_N", 5000);
            run("drain", &s, &targets, &mut rows, async |s, t| {
                delivery::sigterm(s, t, n).await
            })
            .await
        }
        Cmd::Avalanche(_) => {
            let n = n_or("BENCH_AVALANCHE_N", 20000);
            run("avalanche", &s, &targets, &mut rows, async |s, t| {
                delivery::avalanche(s, t, n).await
            })
            .await
        }
        Cmd::LogCost(_) => {
            let n = n_or("BENCH_LOG_USERS", 1000);
            run("log-cost", &s, &targets, &mut rows, async |s, t| {
                delivery::log_cost(s, t, n).await
            })
            .await
        }
        Cmd::NoteSync(_) => {
            run(
                "note-sync",
                &s,
                &[Target::Tidings],
                &mut rows,
                async |s, _| tidings_bench::notes::note_sync(s, n).await,
            )
            .await
        }
        Cmd::All(a) => {
            let size = |v: usize| a.all_n.unwrap_or(v);
            let (idle_n, storm_n, push_n, fanout_n) = (
                size(a.idle_n),
                size(a.storm_n),
                size(a.push_n),
                size(a.fanout_n),
            );
            run("idle", &s, &targets, &mut rows, async |s, t| {
                scenarios::idle(s, t, idle_n).await
            })
            .await;
            run("auth-storm", &s, &targets, &mut rows, async |s, t| {
                scenarios::auth_storm(s, t, storm_n).await
            })
            .await;
            run("push-latency", &s, &targets, &mut rows, async |s, t| {
                scenarios::push_latency(s, t, push_n).await
            })
            .await;
            run("fanout", &s, &targets, &mut rows, async |s, t| {
                scenarios::fanout(s, t, fanout_n).await
            })
            .await;
            run("cluster", &s, &targets, &mut rows, async |s, t| {
                scenarios::cluster(s, t, push_n, fanout_n).await
            })
            .await;
            let (jitter_n, avalanche_n) = (size(a.jitter_n), size(a.avalanche_n));
            let log_users = size(a.log_users);
            run("jitter", &s, &targets, &mut rows, async |s, t| {
                delivery::jitter(s, t, jitter_n).await
            })
            .await;
            run("avalanche", &s, &targets, &mut rows, async |s, t| {
                delivery::avalanche(s, t, avalanche_n).await
            })
            .await;
            run("log-cost", &s, &targets, &mut rows, async |s, t| {
                delivery::log_cost(s, t, log_users).await
            })
            .await;
        }
        Cmd::Doc(_) => {}
    }
    println!("{}", report::table(&rows));
    let path = report::write_csv(&rows, common.out.as_deref())?;
    eprintln!("wrote {}", path.display());
    if let Some(out) = doc_out {
        doc::write(&rows, &out, &std::env::args().collect::<Vec<_>>().join(" "))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
