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

const { spawn } = require('node:child_process');
const fs = require('node:fs');
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
 * Starts the server on a free port with a fresh database and waits until
 * `GET /healthz` answers. Returns `{ url, stop() }`.
 */
async function startServer() {
  const bin = process.env.TIDINGS_BIN || path.join(REPO_ROOT, 'target', 'debug', 'tidings');
  if (!fs.existsSync(bin)) {
    throw new Error(`server binary ${bin} not found: run \`cargo build --bin tidings\` or set TIDINGS_BIN`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidings-js-'));
  const databaseUrl =
    process.env.TIDINGS_TEST_DATABASE_URL || `sqlite://${path.join(dir, 't.db')}?mode=rwc`;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = tail(2_000_000);
  const showLog = process.env.TIDINGS_TEST_SERVER_LOG === '1';
  const logDir = path.join(os.tmpdir(), 'tidings-js-logs');
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${path.basename(process.argv[1] || 'server')}.log`);
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

  const stop = async () => {
    process.removeListener('exit', killOnExit);
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
  activeServer = { url, stop, log: () => log.text, logFile };
  return activeServer;
}

/** The server of this test file (for quoting its log in failures). */
let activeServer = null;

/**
 * The server's log from its first line that mentions any of `ids` on, at
 * most `max` lines (tests run one at a time, so that is this socket's story;
 * socketioxide's per-packet lines do not name the socket).
 */
function serverLogAbout(ids, max = 60) {
  if (!activeServer) return '';
  const wanted = ids.filter(Boolean);
  if (wanted.length === 0) return '';
  const lines = activeServer.log().split('\n');
  const first = lines.findIndex((line) => wanted.some((id) => line.includes(id)));
  if (first < 0) return '';
  const shown = lines.slice(first, first + max);
  if (lines.length > first + max) shown.push('…');
  return shown.join('\n');
}

// ---------------------------------------------------------------------------
// GraphQL

function basicAuth(user) {
  return 'Basic ' + Buffer.from(`${user.id}:${user.secretkey}`).toString('base64');
}

/** Runs a GraphQL operation and returns its `data`; throws on any error. */
async function graphql(server, query, variables = {}, user = null) {
  const headers = { 'content-type': 'application/json' };
  if (user) headers.authorization = basicAuth(user);
  const res = await fetch(`${server.url}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
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
      (activeServer ? `(full server log: ${activeServer.logFile})` : '')
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
 *
 * Returns `{ socket, events, close() }`; `events` is an EventLog.
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

  const socket = io(server.url, opts);
  const ids = () => [socket.id, socket.io && socket.io.engine && socket.io.engine.id];
  const events = new EventLog(`socket.io-client ${version} over ${transports.join('→')}`, () =>
    serverLogAbout(ids()),
  );
  onAnyEvent(version, socket, (event, args) => events.record(event, args));
  socket.on('disconnect', (reason) => events.note(`disconnect(${reason})`));
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

module.exports = {
  TIMEOUT_MS,
  QUIET_MS,
  VERSIONS,
  TRANSPORTS,
  CLIENTS,
  withTimeout,
  startServer,
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
  withSockets,
  cookieHeader,
  EventLog,
};
