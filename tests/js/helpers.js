'use strict';
// Shared set-up for the JavaScript client suite: spawns the real tidings
// binary, talks GraphQL to it, and connects real socket.io-client 4.x, 3.x
// and 2.x sockets (installed side by side under the npm aliases sio4, sio3,
// sio2).
//
// Environment:
//   TIDINGS_BIN                path of the server binary
//                              (default: <repo>/target/debug/tidings)
//   TIDINGS_TEST_DATABASE_URL  database URL to use instead of a fresh SQLite
//                              file per test file (e.g. a PostgreSQL URL)
//   TIDINGS_TEST_SERVER_LOG=1  show the server's log on this process' stderr
//                              (it is always written in full to
//                              $TMPDIR/tidings-js-logs/<test file>.log)
//   RUST_LOG                   the server's log levels (default: debug for
//                              tidings and socketioxide, so that a timeout
//                              can quote what the server did with the socket)
//   TIDINGS_JS_TOPOLOGY        `single` (default): startServer() is one
//                              process; `cluster`: three processes sharing a
//                              fresh PostgreSQL database and Redis, behind
//                              nginx, with requests and sockets spread over
//                              the nodes (see startCluster)
//   TIDINGS_TEST_POSTGRES_URL, TIDINGS_TEST_REDIS_URL, TIDINGS_NGINX:
//                              what a cluster uses (see README.md)
//   TIDINGS_TEST_REDIS_CLUSTER_NODES, or TIDINGS_TEST_REDIS_SENTINELS with
//   TIDINGS_TEST_REDIS_SENTINEL_MASTER: the cluster's nodes join a Redis
//                              Cluster or a Sentinel-followed master instead
//                              of TIDINGS_TEST_REDIS_URL (which then names
//                              a node backend services publish to; see
//                              scripts/redis-topologies env)

const { execFile, spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

/** Default wait for anything expected to happen. */
const TIMEOUT_MS = 5000;
/** How long "nothing arrives" is watched for. */
const QUIET_MS = 500;
const STARTUP_TIMEOUT_MS = 60000;

const REPO_ROOT = path.resolve(__dirname, '..', '..');

const CLIENTS = {
  4: require('sio4'),
  3: require('sio3'),
  2: require('sio2'),
  // The version the social app's own web client is built with
  // (social-client.test.js).
  '4.7': require('sio47'),
};
const VERSIONS = [4, 3, 2];

/** The transport settings every version is driven over. */
const TRANSPORTS = {
  websocket: ['websocket'],
  polling: ['polling'],
  // The default: starts on long-polling, then upgrades to WebSocket.
  upgrade: ['polling', 'websocket'],
};

// ---------------------------------------------------------------------------
// Timeouts

/**
 * Rejects with `message` (a string, or a function called at the timeout so
 * that it can describe the state then) unless `promise` settles within `ms`.
 */
function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const text = typeof message === 'function' ? message() : message;
      reject(new Error(`timed out after ${ms} ms: ${text}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// The server

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Keeps the last `limit` characters of a stream, for error messages. */
function tail(limit) {
  let text = '';
  return {
    push(chunk) {
      text += chunk;
      if (text.length > limit) text = text.slice(text.length - limit);
    },
    get text() {
      return text;
    },
  };
}

/**
 * The server a test file runs against: one node (`startNode()`), or with
 * TIDINGS_JS_TOPOLOGY=cluster three nodes behind nginx (`startCluster()`).
 * Either way the answer has `url`, `port`, `name`, `log()`, `logFile` and
 * `stop()`, so a test file does not need to know which it got. `options`:
 * those of startNode() (only `env` for a cluster).
 */
async function startServer(options = {}) {
  const topology = process.env.TIDINGS_JS_TOPOLOGY || 'single';
  if (topology === 'single') return startNode(options);
  if (topology === 'cluster') {
    if (options.databaseUrl) throw new Error('a cluster makes its own PostgreSQL database: no databaseUrl');
    return startCluster({ env: options.env });
  }
  throw new Error(`TIDINGS_JS_TOPOLOGY must be \`single\` or \`cluster\`, not ${JSON.stringify(topology)}`);
}

/**
 * Starts one server process on a free port with a fresh database and waits
 * until `GET /healthz` answers. Returns `{ url, port, name, log(), logFile,
 * stop() }`.
 *
 * options (all optional; without them: one server, fresh SQLite file):
 *   databaseUrl  database URL (overrides TIDINGS_TEST_DATABASE_URL)
 *   env          extra environment variables for the server
 *   name         tells several servers of one test file apart: in their
 *                log file names and in the log quoted by a timeout
 */
async function startNode(options = {}) {
  const bin = process.env.TIDINGS_BIN || path.join(REPO_ROOT, 'target', 'debug', 'tidings');
  if (!fs.existsSync(bin)) {
    throw new Error(`server binary ${bin} not found: run \`cargo build --bin tidings\` or set TIDINGS_BIN`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidings-js-'));
  const databaseUrl =
    options.databaseUrl ||
    process.env.TIDINGS_TEST_DATABASE_URL ||
    `sqlite://${path.join(dir, 't.db')}?mode=rwc`;
  const name = options.name || '';
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = tail(2_000_000);
  const showLog = process.env.TIDINGS_TEST_SERVER_LOG === '1';
  const logDir = path.join(os.tmpdir(), 'tidings-js-logs');
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(
    logDir,
    `${path.basename(process.argv[1] || 'server')}${name ? `-${name}` : ''}.log`,
  );
  const logStream = fs.createWriteStream(logFile);

  const child = spawn(bin, [], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      TIDINGS_LISTEN: `127.0.0.1:${port}`,
      // These suites fail on purpose, many times, from one address; the
      // per-address limit has its own Rust tests (tests/api/limits.rs).
      TIDINGS_MAX_FAILED_AUTH_PER_ADDRESS: process.env.TIDINGS_MAX_FAILED_AUTH_PER_ADDRESS || '100000',
      RUST_LOG: process.env.RUST_LOG || 'info,tidings=debug,socketioxide=debug',
      NO_COLOR: '1',
      ...(options.env || {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      log.push(chunk);
      if (!logStream.writableEnded) logStream.write(chunk);
      if (showLog) process.stderr.write(chunk);
    });
  }
  // 'close': the process has exited and its output has all been read.
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  let spawnError = null;
  child.once('error', (err) => {
    spawnError = err;
  });

  let server = null;
  const stop = async () => {
    process.removeListener('exit', killOnExit);
    activeServers = activeServers.filter((s) => s !== server);
    if (!spawnError) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      try {
        await withTimeout(exited, 5000, 'tidings to stop on SIGTERM');
      } catch {
        child.kill('SIGKILL');
        await exited;
      }
    }
    await new Promise((resolve) => logStream.end(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  };

  // Wait for /healthz, failing at once if the process dies.
  let gone = null;
  exited.then((status) => {
    gone = status;
  });
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (spawnError || gone) {
      await stop();
      const why = spawnError ? spawnError.message : `exited with ${JSON.stringify(gone)}`;
      throw new Error(`tidings did not start (${why}); its log:\n${log.text.slice(-20000)}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      const body = await res.text();
      if (res.status === 200 && body.trim() === 'ok') break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`tidings did not answer /healthz within ${STARTUP_TIMEOUT_MS} ms; its log:\n${log.text.slice(-20000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  /** Kills the process with `signal` at once (SIGKILL: a node that dies). */
  const kill = (signal) => child.kill(signal);
  server = { url, port, name, stop, kill, exited, log: () => log.text, logFile };
  activeServers.push(server);
  return server;
}

/** The running servers of this test file (for quoting their logs in failures). */
let activeServers = [];

/**
 * The server's log from its first line that mentions any of `ids` on, at
 * most `max` lines (tests run one at a time, so that is this socket's story;
 * socketioxide's per-packet lines do not name the socket).
 */
function serverLogAbout(ids, max = 60) {
  const wanted = ids.filter(Boolean);
  if (wanted.length === 0) return '';
  const parts = [];
  for (const server of activeServers) {
    const lines = server.log().split('\n');
    const first = lines.findIndex((line) => wanted.some((id) => line.includes(id)));
    if (first < 0) continue;
    const shown = lines.slice(first, first + max);
    if (lines.length > first + max) shown.push('…');
    // Several servers (a cluster): say whose log it is.
    if (activeServers.length > 1) shown.unshift(`[${server.name || server.url}]`);
    parts.push(shown.join('\n'));
  }
  return parts.join('\n');
}

// ---------------------------------------------------------------------------
// GraphQL

function basicAuth(user) {
  return 'Basic ' + Buffer.from(`${user.id}:${user.secretkey}`).toString('base64');
}

/**
 * Runs a GraphQL operation and returns its `data`; throws on any error.
 * Sent from the server's next source address if it spreads its clients
 * (a cluster: see startCluster), so mutations land on varying nodes.
 */
async function graphql(server, query, variables = {}, user = null) {
  const headers = { 'content-type': 'application/json' };
  if (user) headers.authorization = basicAuth(user);
  const res = await httpRequest(`${server.url}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
    localAddress: sourceAddress(server),
  });
  const { text } = res;
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`GraphQL answered ${res.status} with a non-JSON body: ${text}`);
  }
  if (res.status !== 200 || body.errors) {
    throw new Error(`GraphQL ${res.status} errors: ${JSON.stringify(body.errors ?? body)}\nquery: ${query}`);
  }
  return body.data;
}

const SIGN_UP = 'mutation($u:String!){ signUp(username:$u){ id username secretkey } }';
const FOLLOW =
  'mutation($id:ID!){ followUnfollowUser(userId:$id){ following user{ id username } } }';
const GET_LOCATION = 'mutation($id:ID!){ getLocation(userId:$id){ id } }';
const SEND_MESSAGE = 'mutation($c:ID!,$t:String!){ sendMessage(chatroomId:$c, content:$t){ id content } }';

/** Signs up a user with a random name; returns `{ id, username, secretkey }`. */
async function signUp(server, prefix = 'u') {
  const username = `${prefix}_${crypto.randomBytes(6).toString('hex')}`;
  const data = await graphql(server, SIGN_UP, { u: username });
  return data.signUp;
}

function follow(server, follower, target) {
  return graphql(server, FOLLOW, { id: target.id }, follower).then((d) => d.followUnfollowUser);
}

function getLocation(server, caller, other) {
  return graphql(server, GET_LOCATION, { id: other.id }, caller).then((d) => d.getLocation);
}

function sendMessage(server, sender, chatroomId, content) {
  return graphql(server, SEND_MESSAGE, { c: chatroomId, t: content }, sender).then((d) => d.sendMessage);
}

function credentials(user) {
  return { id: user.id, secretkey: user.secretkey };
}

// ---------------------------------------------------------------------------
// Sockets

/**
 * Records every event a socket receives from the moment it is created, so a
 * test never races the server: `next(name)` takes the oldest unconsumed
 * event of that name, waiting for it if it has not come yet.
 */
class EventLog {
  constructor(label, context = () => '') {
    this.label = label;
    this.context = context;
    this.queue = []; // { seq, event, args }, oldest first
    this.seq = 0; // events recorded so far
    this.waiters = []; // { event, resolve }
    this.lifecycle = []; // connection events, for failure messages
  }

  record(event, args) {
    this.seq += 1;
    const i = this.waiters.findIndex((w) => w.event === event);
    if (i >= 0) {
      const [waiter] = this.waiters.splice(i, 1);
      waiter.resolve(args);
    } else {
      this.queue.push({ seq: this.seq, event, args });
    }
  }

  note(what) {
    this.lifecycle.push(what);
  }

  describe() {
    const pending = this.queue.map((e) => `${e.event} ${JSON.stringify(e.args)}`);
    const context = this.context();
    return (
      `${this.label}; unconsumed events: [${pending.join(', ')}]; connection: [${this.lifecycle.join(', ')}]` +
      (context ? `\nserver log about this socket:\n${context}\n` : '') +
      (activeServers.length > 0
        ? `(full server log: ${activeServers.map((s) => s.logFile).join(', ')})`
        : '')
    );
  }

  /** Arguments of the next `event` (an array). */
  nextArgs(event, ms = TIMEOUT_MS) {
    const i = this.queue.findIndex((e) => e.event === event);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0].args);
    let waiter;
    const arrived = new Promise((resolve) => {
      waiter = { event, resolve };
      this.waiters.push(waiter);
    });
    return withTimeout(arrived, ms, `no "${event}" event`).catch((err) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      err.message += ` (${this.describe()})`;
      throw err;
    });
  }

  /** First argument of the next `event`. */
  async next(event, ms = TIMEOUT_MS) {
    const args = await this.nextArgs(event, ms);
    return args[0];
  }

  /** A point in the stream, for `unconsumed({ since })`. */
  mark() {
    return this.seq;
  }

  /**
   * The events not taken by `next`, as `{ event, args }`: those recorded
   * after `since` (a `mark()`), and only those named in `events` if given.
   */
  unconsumed({ since = 0, events = null } = {}) {
    return this.queue
      .filter((e) => e.seq > since && (!events || events.includes(e.event)))
      .map(({ event, args }) => ({ event, args }));
  }

  /** `unconsumed(filter)` after watching for `ms`: for "nothing arrives". */
  async quiet(ms = QUIET_MS, filter = {}) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.unconsumed(filter);
  }
}

/** Calls `fn(event, args)` for every event the server sends to `socket`. */
function onAnyEvent(version, socket, fn) {
  if (version >= 3) {
    socket.onAny((event, ...args) => fn(event, args));
    return;
  }
  // socket.io-client 2.x has no onAny: every incoming EVENT packet goes
  // through Socket#onevent (whose `packet.data` is [name, ...args]).
  const original = socket.onevent;
  socket.onevent = function onevent(packet) {
    const [event, ...args] = packet.data || [];
    fn(event, args);
    return original.call(this, packet);
  };
}

/**
 * Opens a socket with socket.io-client `version` and waits for `connect`.
 *
 * options:
 *   transports  array passed to the client (default ['websocket'])
 *   auth        handshake `auth` object (3.x and 4.x only)
 *   headers     extra HTTP headers for the handshake requests (Node only;
 *               all three versions honour `extraHeaders` there)
 *   localAddress  loopback source address of every connection (e.g.
 *               '127.0.0.5'), to look like a different client to a load
 *               balancer. The client's own `localAddress` option reaches
 *               only the WebSocket transport (2.x, 3.x and 4.x alike);
 *               long-polling requests take it from an http.Agent, which
 *               all three pass to their XMLHttpRequest, so both are set.
 *               Default: the server's next source address if it spreads
 *               its clients (a cluster), otherwise none.
 *   query       extra query parameters of every request (all versions)
 *
 * Returns `{ socket, events, version, localAddress, disconnection, close() }`;
 * `events` is an EventLog, `disconnection` resolves to the client's reason
 * when the socket is disconnected (see disconnected()).
 */
async function connect(version, server, options = {}) {
  const io = CLIENTS[version];
  if (!io) throw new Error(`no socket.io-client ${version}`);
  const transports = options.transports || TRANSPORTS.websocket;
  const opts = {
    transports,
    forceNew: true,
    reconnection: false,
    timeout: TIMEOUT_MS,
  };
  if (options.auth) {
    if (version < 3) throw new Error('socket.io-client 2.x has no handshake auth option');
    opts.auth = options.auth;
  }
  if (options.headers) opts.extraHeaders = options.headers;
  const localAddress = options.localAddress || sourceAddress(server);
  if (localAddress) {
    opts.localAddress = localAddress;
    opts.agent = loopbackAgent(localAddress);
  }
  if (options.query) opts.query = options.query;

  const socket = io(server.url, opts);
  const ids = () => [socket.id, socket.io && socket.io.engine && socket.io.engine.id];
  const from = localAddress ? ` from ${localAddress}` : '';
  const events = new EventLog(`socket.io-client ${version} over ${transports.join('→')}${from}`, () =>
    serverLogAbout(ids()),
  );
  onAnyEvent(version, socket, (event, args) => events.record(event, args));
  socket.on('disconnect', (reason) => events.note(`disconnect(${reason})`));
  const disconnection = new Promise((resolve) => socket.once('disconnect', resolve));
  socket.on('connect_error', (err) => events.note(`connect_error(${err && err.message})`));

  const connected = new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', (err) => reject(new Error(`connect_error: ${err && err.message}`)));
    if (version < 3) socket.once('connect_timeout', () => reject(new Error('connect_timeout')));
  });
  const handle = {
    socket,
    events,
    version,
    localAddress,
    /** Resolves to the client's reason when the socket is disconnected. */
    disconnection,
    close() {
      socket.disconnect();
      // forceNew gives each socket its own Manager; make sure its engine
      // is gone too, so nothing keeps the process alive.
      if (socket.io && socket.io.engine) socket.io.engine.close();
    },
  };
  try {
    await withTimeout(connected, TIMEOUT_MS, () => `connect (${events.describe()})`);
  } catch (err) {
    handle.close();
    throw err;
  }
  events.note('connect');
  return handle;
}

/** The engine.io transport a socket is on now ('polling' or 'websocket'). */
function transportName(handle) {
  return handle.socket.io.engine.transport.name;
}

/** Waits until the socket's engine has upgraded to WebSocket. */
function upgraded(handle, ms = TIMEOUT_MS) {
  const engine = handle.socket.io.engine;
  if (engine.transport.name === 'websocket') return Promise.resolve();
  return withTimeout(
    new Promise((resolve) => engine.once('upgrade', resolve)),
    ms,
    () => `no upgrade to websocket (still on ${engine.transport.name}; ${handle.events.describe()})`,
  );
}

/** Waits until the socket is disconnected; resolves to the client's reason. */
function disconnected(handle, ms = TIMEOUT_MS) {
  return withTimeout(handle.disconnection, ms, () => `no disconnect (${handle.events.describe()})`);
}

/** Emits `event` with `data` and resolves to the ack callback's arguments. */
function emitWithAck(handle, event, data, ms = TIMEOUT_MS) {
  const acked = new Promise((resolve) => handle.socket.emit(event, data, (...args) => resolve(args)));
  return withTimeout(acked, ms, () => `no ack for "${event}" (${handle.events.describe()})`);
}

/**
 * Runs `fn(track)` and then closes every socket passed to `track`, even if
 * `fn` threw.
 */
async function withSockets(fn) {
  const handles = [];
  const track = (h) => {
    handles.push(h);
    return h;
  };
  try {
    return await fn(track);
  } finally {
    for (const h of handles) h.close();
  }
}

function cookieHeader(user) {
  return `id=${user.id}; secretkey=${user.secretkey}`;
}

// ---------------------------------------------------------------------------
// Several clients on one machine: loopback source addresses

/**
 * An http.Agent whose connections come from `localAddress` (any address in
 * 127.0.0.0/8 works on Linux without set-up), so a load balancer that
 * hashes on the client address sees a different client.
 */
function loopbackAgent(localAddress) {
  return new http.Agent({ localAddress });
}

/**
 * The source address of a server's next client connection or request: a
 * cluster started by startCluster() hands out its addresses round robin,
 * so that successive connections and requests reach different nodes; a
 * single node needs none (undefined).
 */
function sourceAddress(server) {
  return server.nextLocalAddress ? server.nextLocalAddress() : undefined;
}

/**
 * One HTTP request with `http.request` (unlike `fetch`, it can choose its
 * source address). Resolves to `{ status, headers, text, json() }`.
 *
 * options: method, headers, body (string or object, sent as JSON),
 * localAddress, timeout (ms).
 */
function httpRequest(url, options = {}) {
  const { method = 'GET', headers = {}, localAddress, timeout = TIMEOUT_MS } = options;
  let body = options.body;
  const allHeaders = { ...headers };
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    allHeaders['content-type'] = allHeaders['content-type'] || 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: allHeaders, localAddress, agent: false }, (res) => {
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode,
          headers: res.headers,
          text,
          json() {
            try {
              return JSON.parse(text);
            } catch {
              throw new Error(`${method} ${url} answered ${res.statusCode} with a non-JSON body: ${text}`);
            }
          },
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`timed out after ${timeout} ms: ${method} ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls `check` (sync or async) until it returns a truthy value, which it resolves to. */
async function waitFor(check, ms = TIMEOUT_MS, message = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      const text = typeof message === 'function' ? message() : message;
      throw new Error(`timed out after ${ms} ms waiting for ${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// ---------------------------------------------------------------------------
// PostgreSQL

/** The database `psql` connects to for CREATE/DROP DATABASE. */
const POSTGRES_ADMIN_URL =
  process.env.TIDINGS_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';

function psql(sql) {
  return new Promise((resolve, reject) => {
    execFile(
      'psql',
      [POSTGRES_ADMIN_URL, '-v', 'ON_ERROR_STOP=1', '-qAtc', sql],
      // CREATE/DROP DATABASE wait for a checkpoint, which takes half a
      // minute and more when other suites fill the same server.
      { timeout: 120000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`psql ${JSON.stringify(sql)} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/**
 * Creates a fresh PostgreSQL database `<prefix>_<random>` (prefix
 * `tidings_test_…`, so `scripts/test` drops it if it is left behind).
 * Returns `{ name, url, drop() }`; `drop()` disconnects whoever is still
 * connected. A database not dropped by the time the process exits is
 * dropped then.
 */
async function createPostgresDatabase(prefix) {
  if (!/^tidings_test_[a-z0-9_]*$/.test(prefix)) {
    throw new Error(`database prefix ${prefix} must be tidings_test_ + [a-z0-9_]`);
  }
  const name = `${prefix}_${crypto.randomBytes(5).toString('hex')}`;
  await psql(`CREATE DATABASE ${name}`);
  const dropSql = `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`;
  const dropOnExit = () => {
    spawnSync('psql', [POSTGRES_ADMIN_URL, '-qc', dropSql], { timeout: 10000, stdio: 'ignore' });
  };
  process.on('exit', dropOnExit);
  return {
    name,
    url: `${POSTGRES_ADMIN_URL.replace(/\/[^/]*$/, '')}/${name}`,
    async drop() {
      process.removeListener('exit', dropOnExit);
      await psql(dropSql);
    },
  };
}

// ---------------------------------------------------------------------------
// nginx

/** The documented load-balancer configuration, which the cluster test runs. */
const NGINX_CONFIG = path.join(REPO_ROOT, 'docs', 'deploy', 'nginx.conf');

/**
 * Turns the documented nginx.conf into one that runs unprivileged from
 * `dir`: every path (pid, logs, temp paths) inside `dir`, `listen` on
 * `listen` ('127.0.0.1:port'), and the `server` lines of the upstream
 * replaced by one per address of `upstreams` (keeping the documented
 * parameters such as max_fails). Everything else is used as documented.
 * Throws if a directive it substitutes is missing, so the documented file
 * cannot drift away from what is tested without the test noticing.
 */
function renderNginxConfig(template, { dir, listen, upstreams }) {
  let text = template;
  const substitute = (what, regex, replace, { min = 1, max = 1 } = {}) => {
    const count = (text.match(regex) || []).length;
    if (count < min || count > max) {
      throw new Error(`${NGINX_CONFIG}: expected ${min}..${max} ${what}, found ${count}`);
    }
    text = text.replace(regex, replace);
  };
  const directive = (name) => new RegExp(`^([ \\t]*${name}[ \\t]+)(\\S+?)(;|[ \\t])`, 'gm');
  const inDir = (file) => (_, head, _path, tail) => `${head}${path.join(dir, file)}${tail}`;
  substitute('`pid` directive', directive('pid'), inDir('nginx.pid'));
  substitute('`error_log` directive', directive('error_log'), inDir('error.log'));
  substitute('`access_log` directive', directive('access_log'), inDir('access.log'));
  for (const temp of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    substitute(`\`${temp}_temp_path\` directive`, directive(`${temp}_temp_path`), inDir(`${temp}_temp`));
  }
  substitute('`user` directive', /^[ \t]*user[ \t][^;]*;[ \t]*\n/gm, '', { min: 0 });
  substitute('`listen` directive', /^([ \t]*listen[ \t]+)[^;]+;/gm, `$1${listen};`);

  const upstream = /^([ \t]*upstream[ \t]+\S+[ \t]*\{)([^}]*)\}/gm;
  substitute('`upstream` block', upstream, (_, head, body) => {
    const lines = body.split('\n');
    const servers = lines.filter((l) => /^[ \t]*server[ \t]/.test(l));
    if (servers.length === 0) throw new Error(`${NGINX_CONFIG}: the upstream has no \`server\` line`);
    const [, indent, params] = /^([ \t]*)server[ \t]+\S+?([ \t][^;]*)?;/.exec(servers[0]);
    const ours = upstreams.map((addr) => `${indent}server ${addr}${params || ''};`).join('\n');
    const at = lines.indexOf(servers[0]);
    const kept = lines.filter((l) => !servers.includes(l));
    kept.splice(at, 0, ours);
    return `${head}${kept.join('\n')}}`;
  });

  const outside = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l) && /(^|[\s'"])\/(var|run|etc|usr)\//.test(l));
  if (outside.length > 0) {
    throw new Error(`${NGINX_CONFIG}: paths outside the test's directory left: ${outside.join(' | ')}`);
  }
  return text;
}

/**
 * Parses the documented `tidings` access log format:
 * `$remote_addr -> $upstream_addr [$time_local] "$request" $status …`.
 */
function parseNginxAccessLog(text) {
  const entries = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) -> (.+?) \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d{3})/.exec(line);
    if (m) entries.push({ remote: m[1], upstream: m[2], method: m[3], uri: m[4], status: Number(m[5]), line });
  }
  return entries;
}

/** nginx on PATH, or in an sbin directory that a user's PATH may lack. */
function findNginx() {
  const dirs = [...(process.env.PATH || '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    const candidate = path.join(dir, 'nginx');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return 'nginx'; // spawn fails with ENOENT, and startNginx says to install it
}

/**
 * Runs nginx (as found on PATH, or TIDINGS_NGINX) with the documented
 * configuration in front of `upstreams` ('127.0.0.1:port' each), on a free
 * port, from a temporary directory, in the foreground. Waits until a
 * request through it reaches a node (`GET /healthz`).
 *
 * Returns `{ url, port, dir, config, accessLog(), errorLog(), stop() }`.
 */
async function startNginx({ upstreams, template = NGINX_CONFIG }) {
  const bin = process.env.TIDINGS_NGINX || findNginx();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidings-nginx-'));
  // Started as root, nginx runs its workers as nobody: they must reach
  // their temp directories in here.
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  const config = renderNginxConfig(fs.readFileSync(template, 'utf8'), {
    dir,
    listen: `127.0.0.1:${port}`,
    upstreams,
  });
  const configFile = path.join(dir, 'nginx.conf');
  fs.writeFileSync(configFile, config);
  const url = `http://127.0.0.1:${port}`;
  const read = (file) => {
    try {
      return fs.readFileSync(path.join(dir, file), 'utf8');
    } catch {
      return '';
    }
  };
  const output = tail(20000);

  const child = spawn(
    bin,
    ['-p', dir, '-c', configFile, '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => output.push(chunk));
  }
  // SIGTERM is nginx's fast shutdown: the master stops its workers, open
  // WebSockets included, and exits.
  const termOnExit = () => child.kill('SIGTERM');
  process.on('exit', termOnExit);
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  let spawnError = null;
  child.once('error', (err) => {
    spawnError = err;
  });
  let gone = null;
  exited.then((status) => {
    gone = status;
  });

  const stop = async () => {
    process.removeListener('exit', termOnExit);
    if (!spawnError) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      try {
        await withTimeout(exited, 5000, 'nginx to stop on SIGTERM');
      } catch {
        // Its workers would outlive a killed master: kill them first.
        const workers = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout || '';
        for (const pid of workers.split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // already gone
          }
        }
        child.kill('SIGKILL');
        await exited;
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const describe = () =>
    `nginx output:\n${output.text}\nerror.log:\n${read('error.log').slice(-10000)}\nconfig:\n${config}`;

  try {
    await waitFor(
      async () => {
        if (spawnError) throw new Error(`nginx did not start (${spawnError.message}; is it installed? apt-get install nginx)`);
        if (gone) throw new Error(`nginx exited with ${JSON.stringify(gone)}; ${describe()}`);
        try {
          const res = await httpRequest(`${url}/healthz`, { timeout: 1000 });
          return res.status === 200 && res.text.trim() === 'ok';
        } catch {
          return false; // not listening yet
        }
      },
      STARTUP_TIMEOUT_MS,
      () => `nginx to answer /healthz from a node; ${describe()}`,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    port,
    dir,
    config,
    accessLog: () => parseNginxAccessLog(read('access.log')),
    errorLog: () => read('error.log'),
    describe,
    stop,
  };
}

// ---------------------------------------------------------------------------
// Redis

/** Redis for clusters: each cluster uses a fresh key prefix on it. */
const REDIS_URL = process.env.TIDINGS_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

/**
 * The nodes' Redis settings: a Redis Cluster or Sentinel when the test
 * environment names one, else one Redis at REDIS_URL.
 */
function redisDeploymentEnv() {
  const env = process.env;
  if (env.TIDINGS_TEST_REDIS_CLUSTER_NODES) {
    return { TIDINGS_REDIS_CLUSTER_NODES: env.TIDINGS_TEST_REDIS_CLUSTER_NODES };
  }
  if (env.TIDINGS_TEST_REDIS_SENTINELS) {
    return {
      TIDINGS_REDIS_SENTINELS: env.TIDINGS_TEST_REDIS_SENTINELS,
      TIDINGS_REDIS_SENTINEL_MASTER: env.TIDINGS_TEST_REDIS_SENTINEL_MASTER || 'tidings',
    };
  }
  return { REDIS_URL };
}

/**
 * Publishes the text `message` on `channel` with `redis-cli`, as any
 * backend service would. Resolves to the number of subscribers that
 * received it (PUBLISH's answer).
 */
function redisPublish(channel, message, redisUrl = REDIS_URL) {
  return new Promise((resolve, reject) => {
    execFile(
      'redis-cli',
      ['-u', redisUrl, 'PUBLISH', channel, message],
      { timeout: TIMEOUT_MS },
      (err, stdout, stderr) => {
        const receivers = Number(stdout.trim());
        if (err || stdout.trim() === '' || !Number.isInteger(receivers)) {
          reject(new Error(`redis-cli PUBLISH ${channel} failed: ${err ? err.message : stdout}\n${stderr}`));
        } else {
          resolve(receivers);
        }
      },
    );
  });
}

/**
 * Subscribes to `channel` with `redis-cli`, as a backend service would.
 * Resolves once the subscription is in place to `{ messages, stop() }`:
 * `messages` is an EventLog whose events are named `message`, each with the
 * published text parsed as JSON.
 */
async function redisSubscribe(channel, redisUrl = REDIS_URL) {
  const child = spawn('redis-cli', ['-u', redisUrl, 'SUBSCRIBE', channel], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const messages = new EventLog(`redis-cli SUBSCRIBE ${channel}`);
  // Not a terminal: redis-cli prints each element of a push on its own
  // line: `subscribe`, channel, count, then `message`, channel, payload.
  const lines = [];
  let partial = '';
  let subscribed;
  const ready = new Promise((resolve) => {
    subscribed = resolve;
  });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    lines.push(...parts);
    while (lines.length >= 3) {
      const [kind, , value] = lines.splice(0, 3);
      if (kind === 'subscribe') subscribed();
      else if (kind === 'message') messages.record('message', [JSON.parse(value)]);
    }
  });
  await withTimeout(ready, TIMEOUT_MS, `redis-cli to subscribe to ${channel}`);
  return {
    messages,
    stop() {
      process.removeListener('exit', killOnExit);
      child.kill('SIGTERM');
    },
  };
}

// ---------------------------------------------------------------------------
// A cluster: several nodes behind nginx

/** Loopback source addresses tried for the address → node map. */
const LOOPBACK_ADDRESSES = Array.from({ length: 100 }, (_, i) => `127.0.0.${i + 2}`);

let exitsOnSignals = false;

/**
 * Interrupted (Ctrl-C, a runner's timeout): exit normally, so that the exit
 * handlers stop the nodes and nginx and drop the database.
 */
function exitOnSignals() {
  if (exitsOnSignals) return;
  exitsOnSignals = true;
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
    process.once(signal, () => process.exit(code));
  }
}

/**
 * Starts `nodeCount` tidings processes sharing a fresh PostgreSQL database
 * (createPostgresDatabase) and Redis (TIDINGS_TEST_REDIS_URL, under a fresh
 * key prefix, so runs in parallel do not hear each other), and nginx with
 * the documented configuration in front of them (startNginx). Checks that
 * every node is ready and joined through Redis, then maps loopback source
 * addresses to the node nginx sends them to (`hash $remote_addr`), until it
 * has `addressesPerNode` for every node.
 *
 * options: nodeCount (3), addressesPerNode (3), env (extra environment of
 * every node, over the cluster's own: REDIS_URL, TIDINGS_REDIS_PREFIX,
 * TIDINGS_BACKGROUND_PUSH_CHANNEL and TIDINGS_TRUSTED_PROXIES=127.0.0.1, as
 * docs/deploy/README.md says to start nodes behind nginx).
 *
 * Returns a server-like object (as startNode's: `url` and `port` are
 * nginx's, `log()` is every node's log, `stop()` stops nginx and the nodes
 * and drops the database) with, besides: `nodes` (startNode handles with
 * `nodeId`), `nginx`, `database`, `redisUrl`, `redisPrefix`,
 * `backgroundPushChannel`, `addressesByNode` (addressesByNode[i]: source
 * addresses that reach nodes[i]), `nodeBehind(address)` (asks nginx's
 * /readyz from `address`: the index of the node that answers) and
 * `nextLocalAddress()`, which hands out one address of each node in turn.
 * connect() and graphql() use the latter when not given an address, so
 * that successive sockets and requests of a test land on different nodes
 * and a push travels between nodes through Redis.
 */
async function startCluster({ nodeCount = 3, addressesPerNode = 3, env = {} } = {}) {
  exitOnSignals();
  const prefix = `tidings_test_js_${crypto.randomBytes(6).toString('hex')}`;
  const cluster = {
    name: 'cluster',
    nodes: [],
    nginx: null,
    database: null,
    redisUrl: REDIS_URL,
    redisPrefix: prefix,
    backgroundPushChannel: `${prefix}:BackgroundPush`,
    presenceChannel: `${prefix}:Presence`,
    addressesByNode: [],
  };
  cluster.stop = async () => {
    // Each step runs even if one before it failed.
    const errors = [];
    const attempt = async (fn) => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    if (cluster.nginx) await attempt(() => cluster.nginx.stop());
    await Promise.all(cluster.nodes.map((node) => attempt(() => node.stop())));
    if (cluster.database) await attempt(() => cluster.database.drop());
    cluster.nginx = null;
    cluster.nodes = [];
    cluster.database = null;
    if (errors.length > 0) throw errors[0];
  };
  cluster.log = () => cluster.nodes.map((node) => `==> ${node.name} <==\n${node.log()}`).join('\n');
  cluster.nodeBehind = async (address) => {
    const res = await httpRequest(`${cluster.url}/readyz`, { localAddress: address });
    if (res.status !== 200) throw new Error(`GET /readyz through nginx from ${address}: ${res.status} ${res.text}`);
    const { node_id: nodeId } = res.json();
    const i = cluster.nodes.findIndex((n) => n.nodeId === nodeId);
    if (i < 0) throw new Error(`nginx answered /readyz from ${address} with an unknown node ${nodeId}`);
    return i;
  };

  try {
    cluster.database = await createPostgresDatabase('tidings_test_js_cluster');
    const nodeEnv = {
      ...redisDeploymentEnv(),
      TIDINGS_REDIS_PREFIX: prefix,
      TIDINGS_BACKGROUND_PUSH_CHANNEL: cluster.backgroundPushChannel,
      TIDINGS_PRESENCE_CHANNEL: cluster.presenceChannel,
      // nginx connects to the nodes from 127.0.0.1: believe its
      // X-Forwarded-For, as docs/deploy/README.md says to.
      TIDINGS_TRUSTED_PROXIES: '127.0.0.1',
      ...env,
    };
    // Started together: they migrate the one database under an advisory lock.
    cluster.nodeEnv = nodeEnv;
    const started = await Promise.allSettled(
      Array.from({ length: nodeCount }, (_, i) =>
        startNode({ databaseUrl: cluster.database.url, env: nodeEnv, name: `node${i + 1}` }),
      ),
    );
    cluster.nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;

    for (const node of cluster.nodes) {
      const res = await httpRequest(`${node.url}/readyz`);
      const body = res.json();
      const ready = res.status === 200 && body.ready === true && body.database === 'ok';
      if (!ready) throw new Error(`${node.name} is not ready: /readyz answered ${res.status} ${res.text}`);
      if (body.redis !== 'ok') throw new Error(`${node.name} is not joined through Redis: /readyz says ${res.text}`);
      node.nodeId = body.node_id;
    }
    if (new Set(cluster.nodes.map((n) => n.nodeId)).size !== nodeCount) {
      throw new Error(`the nodes do not each have their own node_id: ${cluster.nodes.map((n) => n.nodeId)}`);
    }

    cluster.nginx = await startNginx({ upstreams: cluster.nodes.map((n) => `127.0.0.1:${n.port}`) });
    cluster.url = cluster.nginx.url;
    cluster.port = cluster.nginx.port;

    // Which node each source address lands on: ask nginx's /readyz from it.
    const byNode = cluster.nodes.map(() => []);
    for (const address of LOOPBACK_ADDRESSES) {
      if (byNode.every((list) => list.length >= addressesPerNode)) break;
      const i = await cluster.nodeBehind(address);
      if (byNode[i].length < addressesPerNode) byNode[i].push(address);
    }
    if (!byNode.every((list) => list.length >= addressesPerNode)) {
      throw new Error(
        `${LOOPBACK_ADDRESSES.length} source addresses do not reach every node through nginx ` +
          `${addressesPerNode} times: ${JSON.stringify(byNode)}`,
      );
    }
    cluster.addressesByNode = byNode;
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }

  // One address of each node in turn: node 1, 2, 3, 1, 2, 3, …
  const rotation = [];
  for (let k = 0; k < addressesPerNode; k += 1) {
    for (const list of cluster.addressesByNode) rotation.push(list[k]);
  }
  let next = 0;
  cluster.nextLocalAddress = () => {
    const address = rotation[next % rotation.length];
    next += 1;
    return address;
  };
  cluster.logFile = cluster.nodes.map((node) => node.logFile).join(', ');
  return cluster;
}

module.exports = {
  TIMEOUT_MS,
  QUIET_MS,
  VERSIONS,
  TRANSPORTS,
  CLIENTS,
  withTimeout,
  startServer,
  startNode,
  startCluster,
  graphql,
  signUp,
  follow,
  getLocation,
  sendMessage,
  credentials,
  connect,
  transportName,
  upgraded,
  emitWithAck,
  disconnected,
  withSockets,
  cookieHeader,
  EventLog,
  freePort,
  loopbackAgent,
  httpRequest,
  waitFor,
  createPostgresDatabase,
  NGINX_CONFIG,
  renderNginxConfig,
  parseNginxAccessLog,
  startNginx,
  REDIS_URL,
  redisPublish,
  redisSubscribe,
};
