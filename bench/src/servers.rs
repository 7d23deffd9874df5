//! The servers under test as child processes: Tidings, the Node.js peer
//! (`bench/peer`) and the floor (`bench-floor`). Children inherit this
//! process' raised RLIMIT_NOFILE (see [`raise_fd_limit`]); their logs go to
//! files under the system temp directory.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

pub const API_KEY: &str = "bench-api-key-0123456789abcdef";
/// The HS256 key of the JWT scenarios' tokens.
pub const JWT_SECRET: &str = "bench-jwt-hs256-secret-0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Target {
    Tidings,
    /// Tidings, every client on the plain WebSocket (`/ws`).
    TidingsPlain,
    /// Tidings, clients alternating Socket.IO and plain WebSocket.
    TidingsMixed,
    Peer,
    Floor,
}

impl Target {
    /// A Tidings server, whatever its clients speak.
    pub fn is_tidings(self) -> bool {
        matches!(
            self,
            Target::Tidings | Target::TidingsPlain | Target::TidingsMixed
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Tidings => "tidings",
            Target::TidingsPlain => "tidings-plain",
            Target::TidingsMixed => "tidings-mixed",
            Target::Peer => "peer",
            Target::Floor => "floor",
        }
    }
}

/// Raises this process' (and so its children's) open-file limit as far as
/// allowed; returns the new soft limit.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    // As root the hard limit itself may be raised.
    if rlimit::Resource::NOFILE
        .set(wanted, wanted.max(hard))
        .is_ok()
    {
        return wanted;
    }
    let _ = rlimit::Resource::NOFILE.set(hard, hard);
    rlimit::Resource::NOFILE
        .get()
        .map(|(s, _)| s)
        .unwrap_or(hard)
}

pub struct Server {
    pub target: Target,
    pub addr: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Resident set size in KiB, from /proc/<pid>/status.
    pub fn rss_kb(&self) -> u64 {
        rss_kb(self.pid())
    }

    /// SIGKILL, as a crashed or redeployed node: its sockets simply end.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// SIGTERM, as an orchestrator stopping a node: Tidings drains.
    pub fn terminate(&self) -> Result<()> {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.pid());
        }
        Ok(())
    }

    /// The exit code once the process ends, waiting at most `within`
    /// (None: still running, or ended by a signal).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()?
            .ok()?
            .code()
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

pub fn default_tidings_bin() -> PathBuf {
    std::env::var_os("TIDINGS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/tidings"))
}

pub fn default_floor_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("bench-floor")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| workspace_root().join("target/release/bench-floor"))
}

pub fn peer_dir() -> PathBuf {
    workspace_root().join("bench/peer")
}

fn log_file(name: &str) -> Result<(PathBuf, std::fs::File)> {
    let path = std::env::temp_dir().join(format!(
        "tidings-bench-{name}-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let file = std::fs::File::create(&path)?;
    Ok((path, file))
}

/// Applies the migrations (`tidings migrate`) so the schema exists.
pub async fn migrate(tidings_bin: &PathBuf, database_url: &str) -> Result<()> {
    let status = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(tidings_bin)
            .arg("migrate")
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .status(),
    )
    .await
    .context("migrate timed out")?
    .with_context(|| format!("run {}", tidings_bin.display()))?;
    if !status.success() {
        bail!("tidings migrate failed: {status}");
    }
    Ok(())
}

pub struct TidingsOptions<'a> {
    pub bin: &'a PathBuf,
    pub database_url: &'a str,
    pub redis: Option<(&'a str, &'a str)>,
    /// With `redis`: join this Redis Cluster (seeds) instead of its URL.
    pub redis_cluster: Option<&'a str>,
    pub resume_window_secs: Option<u64>,
    /// Set last, so it overrides the defaults above.
    pub env: &'a [(String, String)],
}

/// Starts `cmd` as the server `target` listening on `port`, its output in a
/// log file, killed when the handle is dropped.
fn launch(target: Target, mut cmd: Command, port: u16) -> Result<Server> {
    let (log, file) = log_file(target.name())?;
    let child = cmd
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawn {:?}", cmd.as_std().get_program()))?;
    Ok(Server {
        target,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        log,
        child,
    })
}

pub async fn spawn_tidings(o: &TidingsOptions<'_>) -> Result<Server> {
    let port = free_port()?;
    let mut cmd = Command::new(o.bin);
    cmd.env("TIDINGS_LISTEN", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", o.database_url)
        .env("TIDINGS_API_KEY", API_KEY)
        .env("TIDINGS_MAX_FAILED_AUTH_PER_ADDRESS", "1000000")
        .env("TIDINGS_AUTH_DEADLINE_SECS", "0")
        .env("TIDINGS_SOCKET_EVENTS_PER_SEC", "100000")
        .env("TIDINGS_SOCKET_EVENTS_BURST", "100000")
        .env("TIDINGS_MUTATIONS_PER_MINUTE", "100000000")
        .env("TIDINGS_MUTATIONS_BURST", "1000000")
        .env("TIDINGS_MAX_FAILED_AUTH_PER_USER", "1000000")
        .env("TIDINGS_LOG_FORMAT", "text")
        .env("TIDINGS_JWT_HS256_SECRET", JWT_SECRET)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
        )
        .env_remove("REDIS_URL")
        .env_remove("TIDINGS_REDIS_CLUSTER_NODES")
        .env_remove("TIDINGS_REDIS_SENTINELS")
        .env_remove("TIDINGS_REDIS_SENTINEL_MASTER");
    if let Some(secs) = o.resume_window_secs {
        cmd.env("TIDINGS_RESUME_WINDOW_SECS", secs.to_string());
    }
    if let Some((url, prefix)) = o.redis {
        match o.redis_cluster {
            Some(seeds) => cmd.env("TIDINGS_REDIS_CLUSTER_NODES", seeds),
            None => cmd.env("REDIS_URL", url),
        };
        cmd.env("TIDINGS_REDIS_PREFIX", prefix);
    }
    for (name, value) in o.env {
        cmd.env(name, value);
    }
    let server = launch(Target::Tidings, cmd, port)?;
    wait_http_ready(&server, "/readyz").await?;
    Ok(server)
}

pub async fn spawn_peer(database_url: &str) -> Result<Server> {
    let port = free_port()?;
    let dir = peer_dir();
    if !dir.join("node_modules").exists() {
        bail!(
            "bench/peer/node_modules is missing: run `npm ci` in {}",
            dir.display()
        );
    }
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.js"))
        .env("PORT", port.to_string())
        .env("DATABASE_URL", database_url)
        .env("API_KEY", API_KEY);
    let server = launch(Target::Peer, cmd, port).context("is Node.js installed?")?;
    wait_http_ready(&server, "/readyz").await?;
    Ok(server)
}

pub async fn spawn_floor(bin: &PathBuf) -> Result<Server> {
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.env("FLOOR_LISTEN", format!("127.0.0.1:{port}"));
    let server = launch(Target::Floor, cmd, port)?;
    let start = Instant::now();
    while tokio::net::TcpStream::connect(server.addr).await.is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("floor did not listen within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}

async fn wait_http_ready(server: &Server, path: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let url = format!("http://{}{path}", server.addr);
    let start = Instant::now();
    loop {
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), http.get(&url).send()).await
        {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            bail!(
                "{} not ready within 60 s; log {}:\n{}",
                server.target.name(),
                server.log.display(),
                log.chars().take(4000).collect::<String>()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
