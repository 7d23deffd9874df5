'use strict';
// Delivery across reconnects (docs/protocol.md, "Delivery guarantees"), with
// the real socket.io-client 2.x, 3.x and 4.x reconnecting by themselves:
// pushes sent while a client is away arrive when it is back, once each, in
// order, with their `seq` as a second argument.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  CLIENTS,
  TIMEOUT_MS,
  startServer,
  signUp,
  credentials,
  cookieHeader,
  connect,
  emitWithAck,
  withSockets,
  httpRequest,
  waitFor,
  withTimeout,
} = require('./helpers');

const API_KEY = 'delivery-test-api-key-0123456789';

let server;
before(async () => {
  server = await startServer({ env: { TIDINGS_API_KEY: API_KEY } });
});
after(async () => {
  if (server) await server.stop();
});

/** Pushes `push` `{ n }` to `user` for each n in `ns`, one after another. */
async function push(user, ns) {
  for (const n of ns) {
    const res = await httpRequest(`${server.url}/api/push`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: { users: [user.id], event: 'push', data: { n } },
    });
    assert.equal(res.status, 202, res.text);
  }
}

/**
 * A client that reconnects by itself, as an app's would, recording every
 * `push` with its second argument. `mode`:
 *   'since'     sends the last seq it saw on every (re)connect: handshake
 *               `auth` as a function (3.x, 4.x), or a `resume` event after
 *               `initialConnection` (2.x, which has no handshake auth);
 *   'auth'      an unchanged 3.x/4.x client: handshake `auth` { id, secretkey };
 *   'cookies'   an unchanged client of any version: cookies `id`/`secretkey`.
 */
function reconnectingClient(version, user, mode) {
  const received = [];
  let lastSeq = 0;
  const opts = {
    transports: ['websocket'],
    forceNew: true,
    reconnection: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 500,
    randomizationFactor: 0,
    timeout: TIMEOUT_MS,
  };
  if (mode === 'since' && version >= 3) {
    opts.auth = (cb) => cb({ ...credentials(user), since: lastSeq });
  } else if (mode === 'auth') {
    opts.auth = credentials(user);
  } else if (mode === 'cookies') {
    opts.extraHeaders = { cookie: cookieHeader(user) };
  }
  const socket = CLIENTS[version](server.url, opts);
  let authentications = 0;
  socket.on('auth', (ok) => {
    if (ok) authentications += 1;
  });
  socket.on('push', (data, meta) => {
    received.push({ n: data.n, meta });
    if (meta && meta.seq > lastSeq) lastSeq = meta.seq;
  });
  socket.on('connect', () => {
    if (mode === 'since' && version < 3) {
      socket.emit('initialConnection', credentials(user), (ok) => {
        if (ok && lastSeq > 0) socket.emit('resume', { since: lastSeq });
      });
    }
  });
  return {
    socket,
    received,
    authenticated: (count) => waitFor(() => authentications >= count, TIMEOUT_MS, `authentication #${count}`),
    /** Cuts the transport (the client reconnects by itself). */
    cut() {
      socket.io.engine.close();
    },
    close() {
      socket.io.reconnection(false);
      socket.disconnect();
      if (socket.io.engine) socket.io.engine.close();
    },
  };
}

/** Waits until `client` has received pushes 1..count (repeats allowed). */
function receivedUpTo(client, count) {
  return waitFor(
    () => new Set(client.received.map((r) => r.n)).size >= count,
    TIMEOUT_MS * 2,
    () => `pushes 1..${count}; got ${JSON.stringify(client.received)}`,
  );
}

/** Every push once, in order, its seq equal to its n (repeats of pushes
 * that were in flight at the cut, with their same seq, are dropped first,
 * as the contract lets a client do). */
function assertOnceInOrder(client, count, label) {
  const seen = [];
  let last = 0;
  for (const { n, meta } of client.received) {
    assert.ok(meta && Number.isInteger(meta.seq), `${label}: every push has a seq (${JSON.stringify(meta)})`);
    assert.equal(meta.seq, n, `${label}: seq matches the push`);
    if (meta.seq <= last) continue;
    assert.equal(meta.seq, last + 1, `${label}: no gap, in order: ${JSON.stringify(client.received)}`);
    last = meta.seq;
    seen.push(n);
  }
  assert.deepEqual(seen, Array.from({ length: count }, (_, i) => i + 1), label);
}

async function cutAndComeBack(client, user) {
  await client.authenticated(1);
  await push(user, [1, 2]);
  await receivedUpTo(client, 2);
  const away = new Promise((resolve) => client.socket.once('disconnect', resolve));
  client.cut();
  await withTimeout(away, TIMEOUT_MS, 'the cut');
  await push(user, [3, 4, 5]);
  await client.authenticated(2);
  await receivedUpTo(client, 5);
  await push(user, [6]);
  await receivedUpTo(client, 6);
}

describe('explicit resume: the client sends the last seq it saw', () => {
  for (const version of [4, 3, 2]) {
    it(`socket.io-client ${version}.x gets what was pushed while it was away, once, in order, then live pushes`, async () => {
      const user = await signUp(server, 'since');
      await withSockets(async (track) => {
        // Another tab of the user stays: the server cannot guess the device,
        // only the client's `since` says where it stopped.
        const other = track(await connect(4, server, { auth: credentials(user) }));
        assert.equal(await other.events.next('auth'), true);
        const client = reconnectingClient(version, user, 'since');
        try {
          await cutAndComeBack(client, user);
          assertOnceInOrder(client, 6, `socket.io-client ${version}`);
          const replayed = client.received.filter((r) => r.meta.replayed).map((r) => r.n);
          assert.ok(
            [3, 4, 5].every((n) => replayed.includes(n) || client.received.some((r) => r.n === n)),
            'pushes 3..5 arrived',
          );
        } finally {
          client.close();
        }
      });
    });
  }
});

describe('unchanged clients that send no seq', () => {
  it('socket.io-client 4.x with handshake auth, the user’s only socket, misses nothing across a cut', async () => {
    const user = await signUp(server, 'auth4');
    const client = reconnectingClient(4, user, 'auth');
    try {
      await cutAndComeBack(client, user);
      assertOnceInOrder(client, 6, 'socket.io-client 4 with handshake auth');
    } finally {
      client.close();
    }
  });

  it('socket.io-client 2.x with cookies, the user’s only socket, misses nothing across a cut', async () => {
    const user = await signUp(server, 'cookie2');
    const client = reconnectingClient(2, user, 'cookies');
    try {
      await cutAndComeBack(client, user);
      assertOnceInOrder(client, 6, 'socket.io-client 2 with cookies');
    } finally {
      client.close();
    }
  });
});

describe('resume event and bad since values', () => {
  it('resume replays after since and acknowledges the count; a bad since gets an error and nothing else', async () => {
    const user = await signUp(server, 'resume');
    await withSockets(async (track) => {
      const h = track(await connect(4, server, { auth: credentials(user) }));
      assert.equal(await h.events.next('auth'), true);
      await push(user, [1, 2, 3]);
      for (const n of [1, 2, 3]) {
        const [data, meta] = await h.events.nextArgs('push');
        assert.deepEqual([data, meta], [{ n }, { seq: n }]);
      }
      assert.deepEqual(await emitWithAck(h, 'resume', { since: 1 }), [{ ok: true, replayed: 2 }]);
      for (const n of [2, 3]) {
        assert.deepEqual(await h.events.nextArgs('push'), [{ n }, { seq: n, replayed: true }]);
      }
      for (const [since, error] of [
        [-1, 'since must be a whole number from 0 to 9007199254740991'],
        [2.5, 'since must be a whole number from 0 to 9007199254740991'],
        ['2', 'since must be a whole number from 0 to 9007199254740991'],
        [1e6, "since 1000000 is ahead of this user's log, which ends at 3"],
      ]) {
        assert.deepEqual(await emitWithAck(h, 'resume', { since }), [{ error }], `since ${since}`);
        assert.deepEqual(await h.events.next('error'), { error: `resume: ${error}` });
      }
      // The acks above are the barrier: nothing was replayed for them.
      assert.deepEqual(h.events.unconsumed({ events: ['push'] }), []);
    });
  });
});
