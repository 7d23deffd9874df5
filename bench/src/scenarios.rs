//! The scenarios. Each one starts fresh server(s), seeds users, measures, and
//! stops everything it started. Every phase is bounded in count and time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::report::Row;
use crate::seed::{self, User, SECRET};
use crate::servers::{self, Server, Target, TidingsOptions, API_KEY};
use crate::sio::{self, now_ns, Conn, Framing, Tap};
use crate::stats::Latencies;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Db {
    Postgres,
    Sqlite,
}

/// Everything a scenario needs to know besides its size.
#[derive(Clone, Debug)]
pub struct Settings {
    pub db: Db,
    pub tidings_bin: PathBuf,
    pub floor_bin: PathBuf,
    pub pg_admin_url: String,
    pub redis_url: String,
    /// Two-node scenarios join this Redis Cluster (seeds) instead of
    /// `redis_url` (the redis-topologies scenario sets it).
    pub redis_cluster_nodes: Option<String>,
    /// sendMessage requests per second in push-latency.
    pub rate: u32,
    /// Seconds push-latency sends for.
    pub seconds: u64,
    /// Sender/recipient pairs in push-latency.
    pub pairs: usize,
    /// Pushes in fanout.
    pub pushes: u32,
    /// Connections being set up at once.
    pub concurrency: usize,
    /// Longest any setup phase may take.
    pub phase_limit: Duration,
    /// The shared argon2id hash (computed once per run).
    pub hash: String,
    /// jitter and avalanche: how pushes flow and connections come and go.
    pub durable: crate::delivery::DurableSettings,
    /// `TIDINGS_RESUME_WINDOW_SECS` for the servers (None: their default).
    pub resume_window_secs: Option<u64>,
    /// More environment for Tidings servers (a scenario's own settings).
    pub server_env: Vec<(String, String)>,
}

pub(crate) struct Deployment {
    pub(crate) servers: Vec<Server>,
    /// Where sockets connect.
    pub(crate) sock: SocketAddr,
    /// Where HTTP requests (GraphQL, /api/push) go.
    pub(crate) http: SocketAddr,
    pub(crate) users: Vec<User>,
    /// The `TIDINGS_REDIS_PREFIX` of a cluster (its push log's keys).
    pub(crate) redis_prefix: Option<String>,
    pg_db: Option<String>,
    sqlite: Option<PathBuf>,
}

impl Deployment {
    /// How connection `i` speaks: a mixed run alternates the transports.
    fn framing(&self, i: usize) -> Framing {
        match self.servers[0].target {
            Target::Floor => Framing::Raw,
            Target::TidingsPlain => Framing::Plain,
            Target::TidingsMixed if i % 2 == 1 => Framing::Plain,
            _ => Framing::SocketIo,
        }
    }

    pub(crate) async fn teardown(self, s: &Settings) {
        for server in self.servers {
            server.stop().await;
        }
        if let Some(name) = self.pg_db {
            seed::drop_pg_database(&s.pg_admin_url, &name).await;
        }
        if let Some(path) = self.sqlite {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

pub(crate) async fn deploy(
    s: &Settings,
    target: Target,
    n: usize,
    nodes: usize,
) -> Result<Deployment> {
    if target == Target::Floor {
        let server = servers::spawn_floor(&s.floor_bin).await?;
        let addr = server.addr;
        return Ok(Deployment {
            servers: vec![server],
            sock: addr,
            http: addr,
            users: Vec::new(),
            redis_prefix: None,
            pg_db: None,
            sqlite: None,
        });
    }
    // The peer and clusters need PostgreSQL; a lone Tidings may use SQLite.
    let use_pg = target == Target::Peer || nodes > 1 || s.db == Db::Postgres;
    let (url, pg_db, sqlite) = if use_pg {
        let name = format!(
            "tidings_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let url = seed::create_pg_database(&s.pg_admin_url, &name).await?;
        (url, Some(name), None)
    } else {
        let path = std::env::temp_dir().join(format!(
            "tidings-bench-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        (
            format!("sqlite://{}?mode=rwc", path.display()),
            None,
            Some(path),
        )
    };
    let mut d = Deployment {
        servers: Vec::new(),
        sock: SocketAddr::from(([127, 0, 0, 1], 0)),
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
        users: Vec::new(),
        redis_prefix: None,
        pg_db,
        sqlite,
    };
    let result: Result<()> = async {
        servers::migrate(&s.tidings_bin, &url).await?;
        let t = Instant::now();
        d.users = seed::seed_users(&url, n, &s.hash).await?;
        eprintln!("  seeded {n} users in {:.1} s", t.elapsed().as_secs_f64());
        let prefix = format!(
            "tidings_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        if nodes > 1 {
            d.redis_prefix = Some(prefix.clone());
        }
        for _ in 0..nodes {
            let server = match target {
                Target::Tidings | Target::TidingsPlain | Target::TidingsMixed => {
                    servers::spawn_tidings(&TidingsOptions {
                        bin: &s.tidings_bin,
                        database_url: &url,
                        redis: (nodes > 1).then_some((s.redis_url.as_str(), prefix.as_str())),
                        redis_cluster: s.redis_cluster_nodes.as_deref(),
                        resume_window_secs: s.resume_window_secs,
                        env: &s.server_env,
                    })
                    .await?
                }
                _ => servers::spawn_peer(&url).await?,
            };
            d.servers.push(server);
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        d.teardown(s).await;
        return Err(e);
    }
    d.sock = d.servers[0].addr;
    d.http = d.servers[d.servers.len() - 1].addr;
    Ok(d)
}

/// Prints a progress line every second until dropped.
pub(crate) struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub(crate) fn start(
        label: String,
        total: usize,
        done: Arc<AtomicUsize>,
        failed: Arc<AtomicUsize>,
    ) -> Self {
        let start = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "  [{label}] {}/{total} done, {} failed, {:.0} s",
                    done.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
            }
        });
        Self { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to do with each connection once open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    Connect,
    Auth,
    /// Signs in with a JWT whose `sub` is the user's UUID: no argon2, so
    /// its working memory (~19 MiB a slot) is not counted as the sockets'.
    AuthJwt,
    AuthJoin,
}

/// Opens `count` connections (index `i` authenticates as `users[i]`),
/// `s.concurrency` at a time. Returns them by index (None: failed).
async fn connect_all(
    s: &Settings,
    d: &Deployment,
    label: &str,
    count: usize,
    setup: Setup,
    tap: impl Fn(usize) -> Option<Tap>,
) -> (Vec<Option<Conn>>, Duration) {
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let _progress = Progress::start(label.to_owned(), count, done.clone(), failed.clone());
    let start = Instant::now();
    let deadline = start + s.phase_limit;
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut conns: Vec<Option<Conn>> = (0..count).map(|_| None).collect();
    let mut stream = futures_util::stream::iter(0..count)
        .map(|i| {
            let tap = tap(i);
            let user = d.users.get(i).cloned();
            let target = d.sock;
            let framing = d.framing(i);
            let (done, failed, first_error) = (done.clone(), failed.clone(), first_error.clone());
            async move {
                let result: Result<Conn> = async {
                    if Instant::now() > deadline {
                        bail!("phase time limit reached");
                    }
                    let mut conn = Conn::open(target, sio::source_addr(i), framing, tap).await?;
                    if setup == Setup::AuthJwt {
                        let user = user.context("no user for this connection")?;
                        conn.authenticate_token(&jwt(&user.id)?).await?;
                    } else if setup != Setup::Connect {
                        let user = user.context("no user for this connection")?;
                        conn.authenticate(&user.id, SECRET).await?;
                        if setup == Setup::AuthJoin {
                            conn.join_room("topic:bench").await?;
                        }
                    }
                    Ok(conn)
                }
                .await;
                match result {
                    Ok(conn) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        (i, Some(conn))
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert_with(|| format!("{e:#}"));
                        }
                        (i, None)
                    }
                }
            }
        })
        .buffer_unordered(s.concurrency.max(1));
    while let Some((i, conn)) = stream.next().await {
        conns[i] = conn;
    }
    let took = start.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        let e = first_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default();
        eprintln!("  [{label}] {failed} of {count} failed; first error: {e}");
    }
    (conns, took)
}

fn ok_count(conns: &[Option<Conn>]) -> usize {
    conns.iter().filter(|c| c.is_some()).count()
}

fn consume_all() -> Option<Tap> {
    Some(Arc::new(|_: &str, _: &Value, _: u64| true))
}

// ---------------------------------------------------------------- idle

/// Sockets one process can hold here: the open-file limit (which the
/// servers inherit) less room for the process' other files.
pub(crate) fn socket_capacity() -> usize {
    let limit = rlimit::Resource::NOFILE
        .get()
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    usize::try_from(limit.saturating_sub(500)).unwrap_or(usize::MAX)
}

pub async fn idle(s: &Settings, target: Target, requested: usize) -> Result<Vec<Row>> {
    idle_as(s, target, requested, "idle").await
}

/// `idle`, every Tidings connection signed in with a JWT instead of argon2
/// (Socket.IO `initialConnection { token }`, plain in-band `auth`): the
/// per-connection memory without the argon2 working memory the first
/// sign-ins allocate, which at a few thousand sockets is most of the delta.
pub async fn idle_jwt(s: &Settings, target: Target, requested: usize) -> Result<Vec<Row>> {
    if !target.is_tidings() {
        eprintln!("  idle-jwt: only Tidings takes JWTs; skipped");
        return Ok(Vec::new());
    }
    idle_as(s, target, requested, "idle-jwt").await
}

async fn idle_as(
    s: &Settings,
    target: Target,
    requested: usize,
    scenario: &str,
) -> Result<Vec<Row>> {
    let n = requested.min(socket_capacity());
    if n < requested {
        eprintln!(
            "  idle: {requested} sockets asked for, but this machine's open-file limit \
             (RLIMIT_NOFILE hard limit, not raisable here) lets one process hold {n}"
        );
    }
    let label = format!("{scenario} {}", target.name());
    let d = deploy(s, target, n, 1).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0 = d.servers[0].rss_kb();
    let setup = if target == Target::Floor {
        Setup::Connect
    } else if scenario == "idle-jwt" {
        Setup::AuthJwt
    } else {
        Setup::Auth
    };
    let (conns, took) = connect_all(s, &d, &label, n, setup, |_| consume_all()).await;
    let ok = ok_count(&conns);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss1 = d.servers[0].rss_kb();
    drop(conns);
    d.teardown(s).await;
    let t = target.name();
    let per = if ok > 0 {
        rss1.saturating_sub(rss0) as f64 / ok as f64
    } else {
        0.0
    };
    Ok(vec![
        Row::new(scenario, t, n, "requested", requested as f64, "sockets"),
        Row::new(scenario, t, n, "connected", ok as f64, "sockets"),
        Row::new(scenario, t, n, "rss_per_conn", per, "KiB"),
        Row::new(scenario, t, n, "rss_before", rss0 as f64 / 1024.0, "MiB"),
        Row::new(scenario, t, n, "rss_after", rss1 as f64 / 1024.0, "MiB"),
        Row::new(scenario, t, n, "setup_time", took.as_secs_f64(), "s"),
    ])
}

// ---------------------------------------------------------------- auth storm

/// Every connection sends `initialConnection` at the same moment.
async fn storm(
    conns: Vec<Option<Conn>>,
    users: &[User],
    limit: Duration,
) -> (Vec<Option<Conn>>, Latencies, Duration, usize) {
    let lat = Arc::new(Latencies::new());
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, conn) in conns.into_iter().enumerate() {
        let lat = lat.clone();
        let id = users[i].id.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = conn?;
            let sent = now_ns();
            match tokio::time::timeout(limit, conn.authenticate(&id, SECRET)).await {
                Ok(Ok(())) => {
                    lat.record(sent, now_ns());
                    Some(conn)
                }
                _ => None,
            }
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.ok().flatten());
    }
    let took = start.elapsed();
    let ok = ok_count(&out);
    let lat = Arc::try_unwrap(lat).unwrap_or_default();
    (out, lat, took, ok)
}

pub async fn auth_storm(s: &Settings, target: Target, n: usize) -> Result<Vec<Row>> {
    if target == Target::Floor {
        eprintln!("  auth-storm: the floor has no authentication; skipped");
        return Ok(Vec::new());
    }
    let t = target.name();
    let d = deploy(s, target, n, 1).await?;
    let mut rows = Vec::new();
    for phase in ["cold", "warm"] {
        let label = format!("auth-storm {phase} {t} connect");
        let (conns, _) = connect_all(s, &d, &label, n, Setup::Connect, |_| consume_all()).await;
        eprintln!(
            "  [auth-storm {phase} {t}] {} sockets open; authenticating all at once",
            ok_count(&conns)
        );
        let (conns, lat, took, ok) = storm(conns, &d.users, s.phase_limit).await;
        let sum = lat.summary();
        let sc = format!("auth-storm-{phase}");
        rows.push(Row::new(&sc, t, n, "authenticated", ok as f64, "sockets"));
        rows.push(Row::new(
            &sc,
            t,
            n,
            "auths_per_s",
            ok as f64 / took.as_secs_f64(),
            "1/s",
        ));
        rows.push(Row::new(&sc, t, n, "all_in", took.as_secs_f64(), "s"));
        rows.push(Row::new(&sc, t, n, "p50", sum.p50_ms, "ms"));
        rows.push(Row::new(&sc, t, n, "p99", sum.p99_ms, "ms"));
        eprintln!(
            "  [auth-storm {phase} {t}] {ok}/{n} in {:.2} s, p99 {:.1} ms",
            took.as_secs_f64(),
            sum.p99_ms
        );
        // Drop every socket, then reconnect on the same server (warm).
        drop(conns);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    d.teardown(s).await;
    Ok(rows)
}

// ---------------------------------------------------------------- JWT storm

/// An HS256 token for `sub`, valid for an hour.
fn jwt(sub: &str) -> Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": sub, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(servers::JWT_SECRET.as_bytes()),
    )?)
}

/// N connections open, then all sign in at once with a JWT (plain: in-band
/// `{ type: "auth", token }`; Socket.IO: `initialConnection { token }`).
/// Users are outside ids (`bench-jwt:<i>`): the cold round creates each
/// one's user row at first sight, the warm round (every connection closed
/// and opened again) finds them.
pub async fn jwt_storm(s: &Settings, target: Target, n: usize) -> Result<Vec<Row>> {
    if !target.is_tidings() {
        eprintln!("  jwt-storm: only Tidings takes JWTs; skipped");
        return Ok(Vec::new());
    }
    let t = target.name();
    let tokens = (0..n)
        .map(|i| jwt(&format!("bench-jwt:{i}")))
        .collect::<Result<Vec<_>>>()?;
    let d = deploy(s, target, 0, 1).await?;
    let mut rows = Vec::new();
    for phase in ["cold", "warm"] {
        let label = format!("jwt-storm {phase} {t} connect");
        let (conns, _) = connect_all(s, &d, &label, n, Setup::Connect, |_| consume_all()).await;
        eprintln!(
            "  [jwt-storm {phase} {t}] {} connections open; signing all in at once",
            ok_count(&conns)
        );
        let lat = Arc::new(Latencies::new());
        let start = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .zip(tokens.iter().cloned())
            .map(|(conn, token)| {
                let lat = lat.clone();
                let limit = s.phase_limit;
                tokio::spawn(async move {
                    let mut conn = conn?;
                    let sent = now_ns();
                    match tokio::time::timeout(limit, conn.authenticate_token(&token)).await {
                        Ok(Ok(())) => {
                            lat.record(sent, now_ns());
                            Some(conn)
                        }
                        _ => None,
                    }
                })
            })
            .collect();
        let mut conns = Vec::with_capacity(tasks.len());
        for task in tasks {
            conns.push(task.await.ok().flatten());
        }
        let took = start.elapsed();
        let ok = ok_count(&conns);
        let sum = lat.summary();
        let sc = format!("jwt-storm-{phase}");
        rows.push(Row::new(&sc, t, n, "authenticated", ok as f64, "sockets"));
        rows.push(Row::new(
            &sc,
            t,
            n,
            "auths_per_s",
            ok as f64 / took.as_secs_f64(),
            "1/s",
        ));
        rows.push(Row::new(&sc, t, n, "all_in", took.as_secs_f64(), "s"));
        rows.push(Row::new(&sc, t, n, "p50", sum.p50_ms, "ms"));
        rows.push(Row::new(&sc, t, n, "p99", sum.p99_ms, "ms"));
        eprintln!(
            "  [jwt-storm {phase} {t}] {ok}/{n} in {:.2} s ({:.0}/s), p99 {:.1} ms",
            took.as_secs_f64(),
            ok as f64 / took.as_secs_f64(),
            sum.p99_ms
        );
        drop(conns);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    d.teardown(s).await;
    Ok(rows)
}

// ---------------------------------------------------------------- push latency

fn basic(user: &User) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{SECRET}", user.id))
    )
}

async fn graphql(
    http: &reqwest::Client,
    addr: SocketAddr,
    user: &User,
    query: &str,
    vars: Value,
) -> Result<Value> {
    let r = tokio::time::timeout(
        sio::STEP,
        http.post(format!("http://{addr}/graphql"))
            .header("authorization", basic(user))
            .json(&json!({ "query": query, "variables": vars }))
            .send(),
    )
    .await
    .context("graphql timed out")??;
    let body: Value = r.json().await?;
    if body.get("errors").is_some_and(|e| !e.is_null()) {
        bail!("graphql errors: {body}");
    }
    Ok(body["data"].clone())
}

pub async fn push_latency(s: &Settings, target: Target, n: usize) -> Result<Vec<Row>> {
    push_latency_on(s, target, n, 1, "push-latency").await
}

async fn push_latency_on(
    s: &Settings,
    target: Target,
    n: usize,
    nodes: usize,
    scenario: &str,
) -> Result<Vec<Row>> {
    if target == Target::Floor {
        eprintln!("  {scenario}: the floor has no users or chatrooms; skipped");
        return Ok(Vec::new());
    }
    let n = n.max(2);
    let t = target.name();
    let d = deploy(s, target, n, nodes).await?;
    let result = push_latency_run(s, &d, t, n, scenario).await;
    d.teardown(s).await;
    result
}

async fn push_latency_run(
    s: &Settings,
    d: &Deployment,
    t: &str,
    n: usize,
    scenario: &str,
) -> Result<Vec<Row>> {
    let k = s.pairs.clamp(1, n / 2);
    let half = n / 2;
    let lat = Arc::new(Latencies::new());
    let label = format!("{scenario} {t}");
    let (conns, took) = connect_all(s, d, &label, n, Setup::Auth, |i| {
        if (half..half + k).contains(&i) {
            let lat = lat.clone();
            let tap: Tap = Arc::new(move |name: &str, arg: &Value, at: u64| {
                if name == "chatroom" {
                    if let Some(sent) = arg["message"]["content"]
                        .as_str()
                        .and_then(|c| c.parse::<u64>().ok())
                    {
                        lat.record(sent, at);
                    }
                }
                true
            });
            Some(tap)
        } else {
            consume_all()
        }
    })
    .await;
    let connected = ok_count(&conns);
    eprintln!(
        "  [{label}] {connected}/{n} authenticated in {:.1} s",
        took.as_secs_f64()
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    // One direct chatroom per pair, created by the sender.
    let mut rooms = Vec::with_capacity(k);
    for i in 0..k {
        let data = graphql(
            &http,
            d.http,
            &d.users[i],
            "mutation($u: ID!) { getLocation(userId: $u) { id } }",
            json!({ "u": d.users[half + i].id }),
        )
        .await
        .context("getLocation")?;
        let id = data["getLocation"]["id"]
            .as_str()
            .context("chatroom id")?
            .to_owned();
        rooms.push(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = u64::from(s.rate) * s.seconds;
    let gql = Arc::new(Latencies::new());
    let errors = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(s.rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut inflight = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let p = (i as usize) % k;
        let (http, gql, errors) = (http.clone(), gql.clone(), errors.clone());
        let user = d.users[p].clone();
        let room = rooms[p].clone();
        let addr = d.http;
        inflight.push(tokio::spawn(async move {
            let sent = now_ns();
            let r = graphql(
                &http,
                addr,
                &user,
                "mutation($c: ID!, $t: String!) { sendMessage(chatroomId: $c, content: $t) { id } }",
                json!({ "c": room, "t": sent.to_string() }),
            )
            .await;
            match r {
                Ok(_) => gql.record(sent, now_ns()),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in inflight {
        let _ = tokio::time::timeout(sio::STEP, task).await;
    }
    let send_secs = start.elapsed().as_secs_f64();
    let errs = errors.load(Ordering::Relaxed);
    let wait_start = Instant::now();
    while lat.count() < total - errs && wait_start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(conns);
    let sum = lat.summary();
    let g = gql.summary();
    eprintln!(
        "  [{label}] {} delivered of {total} sent ({errs} errors), p50 {:.2} p99 {:.2} max {:.2} ms",
        sum.count, sum.p50_ms, sum.p99_ms, sum.max_ms
    );
    Ok(vec![
        Row::new(scenario, t, n, "connected", connected as f64, "sockets"),
        Row::new(scenario, t, n, "sent", total as f64, "requests"),
        Row::new(scenario, t, n, "send_rate", total as f64 / send_secs, "1/s"),
        Row::new(scenario, t, n, "errors", errs as f64, "requests"),
        Row::new(scenario, t, n, "delivered", sum.count as f64, "events"),
        Row::new(scenario, t, n, "p50", sum.p50_ms, "ms"),
        Row::new(scenario, t, n, "p99", sum.p99_ms, "ms"),
        Row::new(scenario, t, n, "max", sum.max_ms, "ms"),
        Row::new(scenario, t, n, "graphql_p99", g.p99_ms, "ms"),
    ])
}

// ---------------------------------------------------------------- fanout

pub async fn fanout(s: &Settings, target: Target, n: usize) -> Result<Vec<Row>> {
    fanout_on(s, target, n, 1, "fanout").await
}

async fn fanout_on(
    s: &Settings,
    target: Target,
    n: usize,
    nodes: usize,
    scenario: &str,
) -> Result<Vec<Row>> {
    let d = deploy(s, target, n, nodes).await?;
    let result = fanout_run(s, &d, target, n, scenario).await;
    d.teardown(s).await;
    result
}

async fn fanout_run(
    s: &Settings,
    d: &Deployment,
    target: Target,
    n: usize,
    scenario: &str,
) -> Result<Vec<Row>> {
    let t = target.name();
    let label = format!("{scenario} {t}");
    let lat = Arc::new(Latencies::new());
    let recording = Arc::new(AtomicBool::new(false));
    let setup = if target == Target::Floor {
        Setup::Connect
    } else {
        Setup::AuthJoin
    };
    let (conns, took) = connect_all(s, d, &label, n, setup, |_| {
        let (lat, recording) = (lat.clone(), recording.clone());
        let tap: Tap = Arc::new(move |name: &str, arg: &Value, at: u64| {
            if (name == "bench" || name.is_empty()) && recording.load(Ordering::Relaxed) {
                if let Some(sent) = arg["t"].as_u64() {
                    lat.record(sent, at);
                }
            }
            true
        });
        Some(tap)
    })
    .await;
    let connected = ok_count(&conns);
    eprintln!(
        "  [{label}] {connected}/{n} in the room in {:.1} s",
        took.as_secs_f64()
    );
    recording.store(true, Ordering::Relaxed);
    // The floor's publisher is one more WebSocket sending control frames.
    let publisher = if target == Target::Floor {
        Some(Conn::open(d.sock, sio::source_addr(n), Framing::Raw, consume_all()).await?)
    } else {
        None
    };
    let pushes = s.pushes.max(1);
    let start_ns = now_ns();
    let rejected = match &publisher {
        Some(p) => {
            for k in 0..pushes {
                p.send_text(format!("!{}", json!({ "t": now_ns(), "k": k })));
            }
            0
        }
        None => publish_pushes(d.http, pushes).await?,
    };
    let expected = connected as u64 * u64::from(pushes - rejected);
    let wait = Instant::now();
    let mut last = (0, Instant::now());
    while lat.count() < expected && wait.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let c = lat.count();
        if c != last.0 {
            last = (c, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    drop(publisher);
    drop(conns);
    let sum = lat.summary();
    let span_s = lat.last_ns().saturating_sub(start_ns) as f64 / 1e9;
    let rate = if span_s > 0.0 {
        sum.count as f64 / span_s
    } else {
        0.0
    };
    eprintln!(
        "  [{label}] {} of {expected} delivered, {:.0}/s, p50 {:.1} p99 {:.1} max {:.1} ms",
        sum.count, rate, sum.p50_ms, sum.p99_ms, sum.max_ms
    );
    Ok(vec![
        Row::new(scenario, t, n, "connected", connected as f64, "sockets"),
        Row::new(scenario, t, n, "pushes", f64::from(pushes), "pushes"),
        Row::new(scenario, t, n, "rejected", f64::from(rejected), "pushes"),
        Row::new(scenario, t, n, "delivered", sum.count as f64, "events"),
        Row::new(scenario, t, n, "expected", expected as f64, "events"),
        Row::new(scenario, t, n, "deliveries_per_s", rate, "1/s"),
        Row::new(scenario, t, n, "p50", sum.p50_ms, "ms"),
        Row::new(scenario, t, n, "p99", sum.p99_ms, "ms"),
        Row::new(scenario, t, n, "max", sum.max_ms, "ms"),
    ])
}

/// Sends `pushes` POST /api/push requests at once (like the floor's
/// publisher, which writes its frames back to back) from a thread and
/// runtime of their own, so the publisher is never starved by the thousands
/// of receiving tasks. Returns how many were not accepted.
async fn publish_pushes(http_addr: SocketAddr, pushes: u32) -> Result<u32> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            let rejected = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(push_all(http_addr, pushes)));
            let _ = done_tx.send(rejected);
        })?;
    Ok(done_rx.await.context("publisher thread died")??)
}

/// The K pushes of [`publish_pushes`], all in flight at once.
async fn push_all(http_addr: SocketAddr, pushes: u32) -> u32 {
    let http = reqwest::Client::new();
    let sends = (0..pushes).map(|k| {
        let http = http.clone();
        async move {
            let data = json!({ "t": now_ns(), "k": k });
            let body = json!({ "rooms": ["topic:bench"], "event": "bench", "data": data });
            let sent = http
                .post(format!("http://{http_addr}/api/push"))
                .bearer_auth(API_KEY)
                .json(&body)
                .send();
            let r = tokio::time::timeout(sio::STEP, sent).await;
            !matches!(r, Ok(Ok(ref resp)) if resp.status().as_u16() == 202)
        }
    });
    let rejected = futures_util::future::join_all(sends).await;
    rejected.into_iter().filter(|r| *r).count() as u32
}

// ---------------------------------------------------------------- cluster

/// push-latency and fanout on two Tidings nodes sharing PostgreSQL and Redis:
/// sockets on node A, requests to node B.
pub async fn cluster(
    s: &Settings,
    target: Target,
    push_n: usize,
    fanout_n: usize,
) -> Result<Vec<Row>> {
    if target != Target::Tidings {
        eprintln!(
            "  cluster: only Tidings runs as a cluster here; skipped for {}",
            target.name()
        );
        return Ok(Vec::new());
    }
    let mut rows = push_latency_on(s, target, push_n, 2, "cluster-push-latency").await?;
    rows.extend(fanout_on(s, target, fanout_n, 2, "cluster-fanout").await?);
    Ok(rows)
}

/// The cluster scenarios (push latency and fan-out on two nodes, sockets
/// on A, requests to B) on one Redis and then on a Redis Cluster (`seeds`,
/// e.g. the three masters `scripts/redis-topologies up cluster` starts),
/// in one run so the two are measured under the same load.
pub async fn redis_topologies(
    s: &Settings,
    target: Target,
    n: usize,
    seeds: &str,
) -> Result<Vec<Row>> {
    if target != Target::Tidings {
        return Ok(Vec::new());
    }
    let one = Settings {
        redis_cluster_nodes: None,
        ..s.clone()
    };
    let mut rows = push_latency_on(&one, target, n, 2, "redis-one-push-latency").await?;
    rows.extend(fanout_on(&one, target, n, 2, "redis-one-fanout").await?);
    let sharded = Settings {
        redis_cluster_nodes: Some(seeds.to_owned()),
        ..s.clone()
    };
    rows.extend(push_latency_on(&sharded, target, n, 2, "redis-cluster-push-latency").await?);
    rows.extend(fanout_on(&sharded, target, n, 2, "redis-cluster-fanout").await?);
    Ok(rows)
}
