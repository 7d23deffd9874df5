'use strict';
// Three tidings nodes (separate processes) sharing one PostgreSQL database
// and one Redis, behind nginx running the documented configuration
// (docs/deploy/nginx.conf). The clients are the real socket.io-client 4.x,
// 3.x and 2.x, each connecting from its own loopback source address, so
// that nginx's `hash $remote_addr consistent` spreads them over the nodes.
//
// Which node a socket is on is known twice over: nginx answers `/readyz`
// from a source address with the node that address hashes to, and the node
// that authenticated the socket logs it. The test checks that both agree,
// and, from nginx's access log, that every request of a session came from
// the socket's source address and went to that same node.
//
// Needs nginx on PATH (scripts/test installs it), PostgreSQL
// (TIDINGS_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test;
// a fresh database is created and dropped) and Redis (TIDINGS_TEST_REDIS_URL,
// default redis://127.0.0.1:6379; a fresh key prefix keeps parallel runs
// apart).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const {
  TIMEOUT_MS,
  QUIET_MS,
  VERSIONS,
  TRANSPORTS,
  startServer,
  signUp,
  follow,
  credentials,
  connect,
  transportName,
  upgraded,
  emitWithAck,
  withSockets,
  httpRequest,
  waitFor,
  createPostgresDatabase,
  startNginx,
} = require('./helpers');

const NODE_COUNT = 3;
/** Loopback source addresses tried for the address → node map. */
const CANDIDATE_ADDRESSES = Array.from({ length: 100 }, (_, i) => `127.0.0.${i + 2}`);
/** Source addresses wanted per node (the last one is for the limit test). */
const ADDRESSES_PER_NODE = 3;
/** Failed authentications per client address (the X-Forwarded-For test). */
const MAX_FAILED_AUTH_PER_ADDRESS = 3;
const REDIS_URL = process.env.TIDINGS_TEST_REDIS_URL || 'redis://127.0.0.1:6379';

let database = null;
let nodes = []; // startServer() handles, plus nodeId
let nginx = null;
let apiKey = null;
/** addresses[i]: source addresses that nginx sends to nodes[i]. */
let addresses = [];

// Interrupted (Ctrl-C, a runner's timeout): exit normally, so that the exit
// handlers of the helpers stop the nodes and nginx and drop the database.
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(signal, () => process.exit(code));
}

/** nginx, as a "server" for the helpers (`url`). */
const balancer = () => ({ url: nginx.url });

before(async () => {
  database = await createPostgresDatabase('tidings_test_js_cluster');
  const prefix = `tidings_test_js_${crypto.randomBytes(6).toString('hex')}`;
  apiKey = crypto.randomBytes(24).toString('hex');
  const env = {
    REDIS_URL,
    TIDINGS_REDIS_PREFIX: prefix,
    TIDINGS_BACKGROUND_PUSH_CHANNEL: `${prefix}:BackgroundPush`,
    TIDINGS_API_KEY: apiKey,
    // nginx connects to the nodes from 127.0.0.1: believe its
    // X-Forwarded-For, as docs/deploy/README.md says to.
    TIDINGS_TRUSTED_PROXIES: '127.0.0.1',
    TIDINGS_MAX_FAILED_AUTH_PER_ADDRESS: String(MAX_FAILED_AUTH_PER_ADDRESS),
  };
  // nodeOfSocket() reads the info line `socket authenticated`.
  if (process.env.RUST_LOG) env.RUST_LOG = `${process.env.RUST_LOG},tidings::gateway=info`;
  // Started together: they migrate the one database under an advisory lock.
  const started = await Promise.allSettled(
    Array.from({ length: NODE_COUNT }, (_, i) =>
      startServer({ databaseUrl: database.url, env, name: `node${i + 1}` }),
    ),
  );
  nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;

  for (const node of nodes) {
    const res = await httpRequest(`${node.url}/readyz`);
    const body = res.json();
    assert.equal(res.status, 200, `${node.name} /readyz: ${res.text}`);
    assert.equal(body.ready, true);
    assert.equal(body.database, 'ok');
    assert.equal(body.redis, 'ok', `${node.name} is joined through Redis`);
    node.nodeId = body.node_id;
  }
  assert.equal(new Set(nodes.map((n) => n.nodeId)).size, NODE_COUNT, 'every node has its own node_id');

  nginx = await startNginx({ upstreams: nodes.map((n) => `127.0.0.1:${n.port}`) });

  // Which node each source address lands on: ask nginx's /readyz from it.
  addresses = nodes.map(() => []);
  for (const address of CANDIDATE_ADDRESSES) {
    if (addresses.every((list) => list.length >= ADDRESSES_PER_NODE)) break;
    const i = await nodeBehindNginxFrom(address);
    if (addresses[i].length < ADDRESSES_PER_NODE) addresses[i].push(address);
  }
  assert.ok(
    addresses.every((list) => list.length >= ADDRESSES_PER_NODE),
    `${CANDIDATE_ADDRESSES.length} source addresses reach every node through nginx: ${JSON.stringify(addresses)}`,
  );
});

after(async () => {
  // Each step runs even if one before it failed.
  const errors = [];
  const attempt = async (fn) => {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  };
  if (nginx) await attempt(() => nginx.stop());
  await Promise.all(nodes.map((node) => attempt(() => node.stop())));
  if (database) await attempt(() => database.drop());
  if (errors.length > 0) throw errors[0];
});

/** The index of the node that nginx sends `address`'s requests to. */
async function nodeBehindNginxFrom(address) {
  const res = await httpRequest(`${nginx.url}/readyz`, { localAddress: address });
  assert.equal(res.status, 200, `GET /readyz through nginx from ${address}: ${res.text}`);
  const { node_id: nodeId } = res.json();
  const i = nodes.findIndex((n) => n.nodeId === nodeId);
  assert.ok(i >= 0, `nginx answered /readyz from ${address} with an unknown node ${nodeId}`);
  return i;
}

/**
 * The index of the node that authenticated `handle`'s socket, from the
 * nodes' logs (`socket authenticated` names the socket id).
 */
async function nodeOfSocket(handle) {
  const id = handle.socket.id;
  const holders = await waitFor(
    () => {
      const found = nodes
        .map((node, i) => ({ node, i }))
        .filter(({ node }) =>
          node
            .log()
            .split('\n')
            .some((line) => line.includes('socket authenticated') && line.includes(id)),
        );
      return found.length > 0 && found;
    },
    TIMEOUT_MS,
    () => `a node to log "socket authenticated" for socket ${id} (${handle.events.describe()})`,
  );
  assert.equal(holders.length, 1, `exactly one node authenticated socket ${id}`);
  return holders[0].i;
}

/**
 * After the socket closed: waits until nginx has logged the session's
 * requests (a WebSocket is logged when it closes), then checks that every
 * one of them came from `address` and went to node `nodeIndex`.
 */
async function assertStickySession(probe, address, nodeIndex, transports) {
  const mine = () => nginx.accessLog().filter((e) => e.uri.includes(`probe=${probe}`));
  const wanted = new Set(transports);
  const entries = await waitFor(
    () => {
      const seen = new Set(mine().map((e) => (/[?&]transport=(\w+)/.exec(e.uri) || [])[1]));
      return [...wanted].every((t) => seen.has(t)) && mine();
    },
    TIMEOUT_MS,
    () =>
      `nginx to log requests over ${transports.join(' and ')} with probe=${probe}; logged: ` +
      JSON.stringify(mine().map((e) => e.line)),
  );
  const upstream = `127.0.0.1:${nodes[nodeIndex].port}`;
  for (const e of entries) {
    assert.equal(e.remote, address, `request from the socket's source address: ${e.line}`);
    assert.equal(e.upstream, upstream, `request went to ${nodes[nodeIndex].name} (${upstream}): ${e.line}`);
    assert.ok(e.status < 400, `request succeeded: ${e.line}`);
  }
}

/** Connects through nginx from `address` and authenticates as `user`. */
async function connectAs(version, user, { transports, address, probe }) {
  const handle = await connect(version, balancer(), {
    transports,
    localAddress: address,
    query: probe ? { probe } : undefined,
  });
  try {
    if (transports.length === 1) assert.equal(transportName(handle), transports[0]);
    const ack = await emitWithAck(handle, 'initialConnection', credentials(user));
    assert.deepEqual(ack, [true], 'initialConnection is acked with true');
    assert.equal(await handle.events.next('auth'), true, '`auth` event is true');
  } catch (err) {
    handle.close();
    throw err;
  }
  return handle;
}

function assertFollowed(followed, follower) {
  assert.equal(followed.followerId, follower.id);
  assert.equal(followed.followerUsername, follower.username);
  assert.equal(followed.following, true);
  assert.ok(Number.isInteger(followed.timestamp), `integer timestamp: ${followed.timestamp}`);
}

describe('nginx in front of three nodes', () => {
  it('runs the documented configuration', () => {
    assert.match(nginx.config, /^\s*hash \$remote_addr consistent;/m);
    assert.match(nginx.config, /^\s*proxy_http_version 1\.1;/m);
    assert.match(nginx.config, /^\s*proxy_set_header Upgrade \$http_upgrade;/m);
    assert.match(nginx.config, /^\s*proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/m);
    for (const node of nodes) assert.ok(nginx.config.includes(`server 127.0.0.1:${node.port}`));
  });

  it('sends every request of one source address to the same node, and different addresses to every node', async () => {
    for (const [i, list] of addresses.entries()) {
      for (const address of list) {
        for (let n = 0; n < 3; n += 1) {
          assert.equal(await nodeBehindNginxFrom(address), i, `${address} always reaches ${nodes[i].name}`);
        }
      }
    }
    assert.equal(new Set(addresses.flat()).size, NODE_COUNT * ADDRESSES_PER_NODE);
  });

  it('keeps /metrics to the nodes', async () => {
    assert.equal((await httpRequest(`${nginx.url}/metrics`)).status, 404);
    assert.equal((await httpRequest(`${nodes[0].url}/metrics`)).status, 200);
  });
});

let rotation = 0;
for (const version of VERSIONS) {
  describe(`socket.io-client ${version}.x through nginx`, () => {
    for (const [name, transports] of Object.entries(TRANSPORTS)) {
      it(`over ${name} (${transports.join('→')}): a mutation on each node reaches the socket once`, async () => {
        // Spread the sockets of successive tests over the nodes.
        const home = rotation % NODE_COUNT;
        const address = addresses[home][Math.floor(rotation / NODE_COUNT) % 2];
        rotation += 1;
        const probe = crypto.randomBytes(6).toString('hex');

        const a = await signUp(balancer(), 'a');
        // One follower per node, each signed up on the node it acts on.
        const followers = await Promise.all(nodes.map((node) => signUp(node, 'f')));

        await withSockets(async (track) => {
          const sa = track(await connectAs(version, a, { transports, address, probe }));
          if (name === 'upgrade') {
            // The pushes below must travel over the upgraded transport,
            // whose handshake nginx must have sent to the same node.
            await upgraded(sa);
            assert.equal(transportName(sa), 'websocket');
          }
          assert.equal(await nodeOfSocket(sa), home, `the socket from ${address} is on ${nodes[home].name}`);
          const authenticated = sa.events.mark();

          for (const [i, node] of nodes.entries()) {
            const result = await follow(node, followers[i], a);
            assert.equal(result.following, true);
            const followed = await sa.events.next('Followed');
            assertFollowed(followed, followers[i]);
            assert.ok(sa.socket.connected, `still connected after the push from ${node.name}`);
          }
          assert.deepEqual(
            await sa.events.quiet(QUIET_MS, { since: authenticated }),
            [],
            'each Followed arrived once, and nothing else arrived',
          );
        });
        await assertStickySession(probe, address, home, transports);
      });
    }
  });
}

/**
 * Three sockets of `user`, one on each node: 4.x over WebSocket, 3.x over
 * long-polling and 2.x upgrading (or the first version available).
 */
async function socketsOnEveryNode(track, user) {
  const plan = [
    { version: 4, transports: TRANSPORTS.websocket },
    { version: 3, transports: TRANSPORTS.polling },
    { version: 2, transports: TRANSPORTS.upgrade },
  ];
  const handles = [];
  for (const [i, { version, transports }] of plan.entries()) {
    const h = track(await connectAs(version, user, { transports, address: addresses[i][0] }));
    handles.push(h);
  }
  const homes = await Promise.all(handles.map((h) => nodeOfSocket(h)));
  assert.deepEqual(homes, [0, 1, 2], 'one socket on each node');
  return handles;
}

describe('one user with a socket on each node', () => {
  it('one mutation reaches all three sockets, once each', async () => {
    const a = await signUp(balancer(), 'a');
    const b = await signUp(balancer(), 'b');
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      const marks = sockets.map((h) => h.events.mark());
      // Made on the middle node directly: the other two are across Redis.
      assert.equal((await follow(nodes[1], b, a)).following, true);
      for (const h of sockets) assertFollowed(await h.events.next('Followed'), b);
      for (const [k, h] of sockets.entries()) {
        assert.deepEqual(await h.events.quiet(QUIET_MS, { since: marks[k] }), [], `${h.events.label}: nothing more`);
      }
    });
  });

  it('POST /api/push through nginx reaches every socket of the user, once each', async () => {
    const a = await signUp(balancer(), 'a');
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      const marks = sockets.map((h) => h.events.mark());
      const data = { note: 'through nginx', n: 42 };
      const res = await httpRequest(`${nginx.url}/api/push`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}` },
        body: { users: [a.id], event: 'notice', data },
      });
      assert.equal(res.status, 202, `POST /api/push: ${res.text}`);
      const body = res.json();
      assert.equal(body.accepted.users, 1, res.text);
      for (const h of sockets) assert.deepEqual(await h.events.next('notice'), data);
      for (const [k, h] of sockets.entries()) {
        assert.deepEqual(await h.events.quiet(QUIET_MS, { since: marks[k] }), [], `${h.events.label}: nothing more`);
      }
      const refused = await httpRequest(`${nginx.url}/api/push`, {
        method: 'POST',
        headers: { authorization: 'Bearer wrong-key-wrong-key' },
        body: { users: [a.id], event: 'notice', data },
      });
      assert.equal(refused.status, 401, `a wrong key is refused: ${refused.text}`);
    });
  });
});

describe('X-Forwarded-For', () => {
  it('each node tells client addresses apart behind nginx (per-address failure limit)', async () => {
    // Two source addresses that reach the same node; the limit is per node.
    const home = 0;
    const [blocked, other] = [addresses[home][2], addresses[home][1]];
    const a = await signUp(balancer(), 'a');
    await withSockets(async (track) => {
      const bad = track(await connect(4, balancer(), { localAddress: blocked }));
      for (let n = 0; n < MAX_FAILED_AUTH_PER_ADDRESS; n += 1) {
        const ack = await emitWithAck(bad, 'initialConnection', { id: a.id, secretkey: 'wrong' });
        assert.deepEqual(ack, [false], `wrong secret ${n + 1} is refused`);
        assert.equal(await bad.events.next('auth'), false);
      }
      // Now even the right secret is refused from that address…
      const ack = await emitWithAck(bad, 'initialConnection', credentials(a));
      assert.deepEqual(ack, [false], 'the right secret is refused from the blocked address');
      const error = await bad.events.next('error');
      assert.match(error.error, /too many failed authentication attempts from your address/);
      // …and the node logged the client's address, not nginx's.
      await waitFor(
        () =>
          nodes[home]
            .log()
            .split('\n')
            .some((l) => l.includes('too many failures from this address') && l.includes(blocked)),
        TIMEOUT_MS,
        () => `${nodes[home].name} to log the refusal with addr ${blocked}`,
      );
      // Another address on the same node is not affected.
      const good = track(await connectAs(4, a, { transports: TRANSPORTS.websocket, address: other }));
      assert.equal(await nodeOfSocket(good), home);
    });
  });
});
