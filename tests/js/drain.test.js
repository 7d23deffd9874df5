'use strict';
// Graceful drain (docs/protocol.md §6.12): SIGTERM on
// one of two real server processes sharing PostgreSQL and Redis. The
// draining node says it is not ready and refuses new connections, then cuts
// its clients' transports one after another over --drain-window-secs; the
// unchanged socket.io-client 4.x clients reconnect by themselves (here to
// the other node, as a load balancer would send them), come back signed in,
// and miss none of the pushes sent before, during and after the move.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const {
  CLIENTS,
  TIMEOUT_MS,
  REDIS_URL,
  startNode,
  createPostgresDatabase,
  signUp,
  credentials,
  httpRequest,
  waitFor,
  withTimeout,
} = require('./helpers');

const API_KEY = 'drain-test-api-key-0123456789';
const WINDOW_SECS = 3;
const USERS = 6;

let database;
let leaving;
let staying;

before(async () => {
  database = await createPostgresDatabase('tidings_test_js_drain');
  const prefix = `tidings_test_js_drain_${crypto.randomBytes(6).toString('hex')}`;
  const env = {
    REDIS_URL,
    TIDINGS_REDIS_PREFIX: prefix,
    TIDINGS_BACKGROUND_PUSH_CHANNEL: `${prefix}:BackgroundPush`,
    TIDINGS_PRESENCE_CHANNEL: `${prefix}:Presence`,
    TIDINGS_API_KEY: API_KEY,
    TIDINGS_DRAIN_WINDOW_SECS: String(WINDOW_SECS),
  };
  // One after the other: the first migrates the database.
  leaving = await startNode({ databaseUrl: database.url, env, name: 'leaving' });
  staying = await startNode({ databaseUrl: database.url, env, name: 'staying' });
});

after(async () => {
  for (const node of [leaving, staying]) {
    if (node) await node.stop();
  }
  if (database) await database.drop();
});

/** Pushes `push` `{ n }` to each of `users` for each n in `ns`, through the node that stays. */
async function push(users, ns) {
  for (const n of ns) {
    const res = await httpRequest(`${staying.url}/api/push`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: { users: users.map((u) => u.id), event: 'push', data: { n } },
    });
    assert.equal(res.status, 202, res.text);
  }
}

/**
 * An unchanged app's client: handshake auth, reconnecting by itself. Its
 * reconnections go to the node that stays, as a load balancer's would once
 * the leaving node is out of rotation.
 */
function client(user) {
  const socket = CLIENTS[4](leaving.url, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 500,
    timeout: TIMEOUT_MS,
    auth: credentials(user),
  });
  socket.io.on('reconnect_attempt', () => {
    socket.io.uri = staying.url;
  });
  const c = { socket, user, received: [], authentications: 0, disconnects: [] };
  socket.on('auth', (ok) => {
    if (ok) c.authentications += 1;
  });
  socket.on('push', (data, meta) => c.received.push({ n: data.n, meta }));
  socket.on('disconnect', (reason) => c.disconnects.push({ reason, at: Date.now() }));
  return c;
}

/** Pushes 1..count, each once in order by seq (a repeat of a push in doubt at the cut, with its same seq, is dropped first, as the contract lets a client do). */
function assertOnceInOrder(c, count) {
  const seen = [];
  let last = 0;
  for (const { n, meta } of c.received) {
    assert.ok(meta && Number.isInteger(meta.seq), `every push has a seq (${JSON.stringify(meta)})`);
    if (meta.seq <= last) continue;
    assert.equal(meta.seq, last + 1, `no gap, in order: ${JSON.stringify(c.received)}`);
    last = meta.seq;
    seen.push(n);
  }
  assert.deepEqual(seen, Array.from({ length: count }, (_, i) => i + 1), `user ${c.user.id}`);
}

const receivedAll = (clients, count) =>
  waitFor(
    () => clients.every((c) => new Set(c.received.map((r) => r.n)).size >= count),
    TIMEOUT_MS * 3,
    () => `pushes 1..${count} to every client: ${JSON.stringify(clients.map((c) => c.received.map((r) => r.n)))}`,
  );

describe('SIGTERM on one node of two', () => {
  it('turns readiness off, refuses new connections, moves every client to the other node over the window, and loses no push', async () => {
    const users = [];
    for (let i = 0; i < USERS; i += 1) users.push(await signUp(staying, 'drain'));
    const clients = users.map(client);
    try {
      await waitFor(() => clients.every((c) => c.authentications >= 1), TIMEOUT_MS * 2, 'every client signed in on the leaving node');
      await push(users, [1, 2]);
      await receivedAll(clients, 2);

      const ready = await httpRequest(`${leaving.url}/readyz`);
      assert.equal(ready.status, 200, ready.text);
      assert.equal(ready.json().draining, false);

      const termAt = Date.now();
      leaving.kill('SIGTERM');

      // Readiness goes false at once, before the clients are all moved.
      await waitFor(
        async () => {
          const res = await httpRequest(`${leaving.url}/readyz`);
          return res.status === 503 && res.json().draining === true;
        },
        TIMEOUT_MS,
        '/readyz to answer 503 draining',
      );
      const stillThere = clients.filter((c) => c.disconnects.length === 0).length;
      assert.ok(stillThere > 0, 'readiness went false before every client was moved');

      // A new connection is refused; the sessions already open are not.
      const handshake = await httpRequest(`${leaving.url}/socket.io/?EIO=4&transport=polling`);
      assert.equal(handshake.status, 503, handshake.text);
      const plain = await httpRequest(`${leaving.url}/ws`);
      assert.equal(plain.status, 503, plain.text);

      // Pushes while the clients are on their way.
      await push(users, [3, 4]);

      const exit = await withTimeout(leaving.exited, (WINDOW_SECS + 15) * 1000, 'the leaving node to exit');
      assert.deepEqual(exit, { code: 0, signal: null }, 'the drained node exits cleanly');

      for (const c of clients) {
        assert.equal(c.disconnects.length, 1, `one disconnect each: ${JSON.stringify(c.disconnects)}`);
        // A cut transport, so the client reconnects; a DISCONNECT packet
        // ("io server disconnect") would have stopped it for good.
        assert.equal(c.disconnects[0].reason, 'transport close');
      }
      // Spread over the window: departures are due at i/n of it, and a
      // timer never fires early.
      const times = clients.map((c) => c.disconnects[0].at).sort((a, b) => a - b);
      const spread = times[times.length - 1] - times[0];
      const least = ((WINDOW_SECS * 1000 * (USERS - 1)) / USERS) * 0.9;
      assert.ok(spread >= least, `disconnects spread over ${spread} ms, at least ${least} expected`);
      assert.ok(times[0] >= termAt, 'no client left before SIGTERM');

      // Back on the other node, signed in again by their handshake auth.
      await waitFor(() => clients.every((c) => c.authentications >= 2 && c.socket.connected), TIMEOUT_MS * 3, 'every client signed in again on the staying node');
      await push(users, [5]);
      await receivedAll(clients, 5);
      for (const c of clients) assertOnceInOrder(c, 5);
    } finally {
      for (const c of clients) {
        c.socket.io.reconnection(false);
        c.socket.disconnect();
      }
    }
  });
});
