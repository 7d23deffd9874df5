'use strict';
// Per-socket and per-address limits (docs/protocol.md §6.5, §6.6) with the
// real clients: each triggers with a clear error while a well-behaved
// socket beside it is untouched. The server runs with small limits so the
// tests stay short. Runs against one node and (TIDINGS_JS_TOPOLOGY=cluster)
// three nodes behind nginx; the per-address test has a node of its own.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  TIMEOUT_MS,
  TRANSPORTS,
  startServer,
  startNode,
  signUp,
  follow,
  credentials,
  connect,
  emitWithAck,
  disconnected,
  withSockets,
  waitFor,
  httpRequest,
} = require('./helpers');

const LIMITS = {
  TIDINGS_SOCKET_EVENTS_PER_SEC: '5',
  TIDINGS_SOCKET_EVENTS_BURST: '10',
  TIDINGS_MAX_ROOMS_PER_SOCKET: '3',
  TIDINGS_MAX_FAILED_AUTH_PER_SOCKET: '3',
};

let server;
before(async () => {
  server = await startServer({ env: LIMITS });
});
after(async () => {
  if (server) await server.stop();
});

async function authenticated(track, target, user, version = 4, transports = TRANSPORTS.websocket) {
  const s = track(await connect(version, target, { transports }));
  assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(user)), [true]);
  assert.equal(await s.events.next('auth'), true);
  return s;
}

async function join(socket, room) {
  assert.deepEqual((await emitWithAck(socket, 'joinRoom', room))[0], { ok: true }, `${socket.events.label} joins ${room}`);
}

describe('limits', () => {
  for (const [version, transports] of [
    [4, TRANSPORTS.websocket],
    [2, TRANSPORTS.polling],
  ]) {
    it(`events per second (${version}.x over ${transports.join('→')}): refused with "rate limited", a flooder is disconnected, its neighbour is not`, async () => {
      const [alice, bob] = await Promise.all([signUp(server, 'alice'), signUp(server, 'bob')]);
      await withSockets(async (track) => {
        const flooder = await authenticated(track, server, alice, version, transports);
        // Its ids as the server logs them (the client forgets them on disconnect).
        const ids = [flooder.socket.id, flooder.socket.io.engine.id].filter(Boolean);
        // Neighbours: the same user on another socket, and another user.
        const neighbours = [
          await authenticated(track, server, alice, 3, TRANSPORTS.polling),
          await authenticated(track, server, bob, 4, TRANSPORTS.websocket),
        ];
        for (const n of neighbours) await join(n, 'topic:calm');
        // A few more than the burst at once: the excess is refused, each
        // refusal acknowledged and sent as an `error` event; fewer than the
        // burst in a row, so the socket stays.
        const burst = Number(LIMITS.TIDINGS_SOCKET_EVENTS_BURST);
        const answers = await Promise.all(
          Array.from({ length: burst + 4 }, () => emitWithAck(flooder, 'joinRoom', 'topic:flood').then(([a]) => a)),
        );
        const passed = answers.filter((a) => a && a.ok === true).length;
        const limited = answers.filter((a) => a && a.error === 'rate limited').length;
        assert.equal(passed + limited, answers.length, `every answer is ok or "rate limited": ${JSON.stringify(answers)}`);
        assert.ok(passed >= burst / 2, `the burst passed: ${JSON.stringify(answers)}`);
        assert.ok(limited >= 2, `the excess is refused: ${JSON.stringify(answers)}`);
        for (let n = 0; n < limited; n += 1) {
          assert.equal((await flooder.events.next('error')).error, 'rate limited', `\`error\` for refusal ${n + 1}`);
        }
        assert.ok(flooder.socket.connected, 'refused a few times, not yet cut off');

        // Then far more, without waiting: cut off.
        const gone = disconnected(flooder, TIMEOUT_MS);
        for (let n = 0; n < 4 * burst; n += 1) flooder.socket.emit('joinRoom', 'topic:flood', () => {});
        const reason = await gone;
        // A long-polling client may see the closed session as a `transport
        // error` (its next poll is refused): the server's log says who cut.
        assert.match(reason, /server disconnect|transport close|transport error/, `disconnected: ${reason}`);
        await waitFor(
          () => server.log().split('\n').some((l) => l.includes('socket keeps flooding, disconnecting') && ids.some((id) => l.includes(id))),
          TIMEOUT_MS,
          () => `the server to log that it cut off the flooder (${ids.join(', ')}); client saw ${reason}`,
        );

        // Each neighbour is served: its relay reaches the other one.
        for (const [k, n] of neighbours.entries()) {
          const other = neighbours[1 - k];
          const event = { type: 'NOTE', timestamp: Date.now(), payload: { k }, room: 'topic:calm' };
          assert.deepEqual(await emitWithAck(n, 'event', event), [{ ok: true }], `${n.events.label} is served`);
          assert.deepEqual((await other.events.next('event')).payload, { k }, `${other.events.label} hears it`);
          assert.ok(n.socket.connected, `${n.events.label} stays connected`);
          assert.deepEqual(n.events.unconsumed({ events: ['error'] }), [], `${n.events.label} was never refused`);
        }
      });
    });
  }

  it('rooms per socket', async () => {
    const alice = await signUp(server, 'alice');
    await withSockets(async (track) => {
      const s = await authenticated(track, server, alice);
      for (const room of ['topic:a', 'topic:b', 'topic:c', 'topic:a']) {
        assert.deepEqual((await emitWithAck(s, 'joinRoom', room))[0], { ok: true }, room);
      }
      const [ack] = await emitWithAck(s, 'joinRoom', 'topic:d');
      assert.deepEqual(ack, { error: 'at most 3 rooms per socket' });
      assert.equal((await s.events.next('error')).error, 'joinRoom: at most 3 rooms per socket');
      assert.deepEqual((await emitWithAck(s, 'leaveRoom', 'topic:a'))[0], { ok: true });
      assert.deepEqual((await emitWithAck(s, 'joinRoom', 'topic:d'))[0], { ok: true }, 'room for one more after leaving');
    });
  });

  it('failed initialConnection attempts per socket: disconnected with a reason, the neighbour is not', async () => {
    const alice = await signUp(server, 'alice');
    await withSockets(async (track) => {
      const neighbour = await authenticated(track, server, alice);
      const guesser = track(await connect(3, server, { transports: TRANSPORTS.polling }));
      const gone = disconnected(guesser, TIMEOUT_MS);
      for (let n = 0; n < 3; n += 1) {
        const ack = await emitWithAck(guesser, 'initialConnection', { id: alice.id, secretkey: `guess-${n}` });
        assert.deepEqual(ack, [false], `guess ${n + 1} is refused`);
      }
      await gone;
      const errors = [];
      while (guesser.events.unconsumed({ events: ['error'] }).length > 0) errors.push(await guesser.events.next('error'));
      assert.ok(
        errors.some((e) => e.error === 'too many failed authentication attempts'),
        `told why: ${JSON.stringify(errors)}`,
      );
      assert.ok(neighbour.socket.connected, 'the neighbour stays connected');
      assert.deepEqual((await emitWithAck(neighbour, 'joinRoom', 'topic:ok'))[0], { ok: true });
    });
  });
});

describe('failed authentications per address', () => {
  let node;
  before(async () => {
    node = await startNode({ env: { TIDINGS_MAX_FAILED_AUTH_PER_ADDRESS: '3' }, name: 'per-address' });
  });
  after(async () => {
    if (node) await node.stop();
  });

  it('are counted across sockets; then even the right secret is refused, and an authenticated socket keeps working', async () => {
    const alice = await signUp(node, 'alice');
    const bob = await signUp(node, 'bob');
    await withSockets(async (track) => {
      const settled = await authenticated(track, node, alice);
      // The guesses come from an address of their own: the ledger is one
      // for sockets and GraphQL, and bob's follow below must not be refused.
      const guesser = { localAddress: '127.0.0.5' };
      for (let n = 0; n < 3; n += 1) {
        // A new socket each time: the per-socket limit is not what trips.
        const s = track(await connect(4, node, guesser));
        assert.deepEqual(await emitWithAck(s, 'initialConnection', { id: alice.id, secretkey: `guess-${n}` }), [false]);
        s.close();
      }
      const late = track(await connect(4, node, guesser));
      assert.deepEqual(await emitWithAck(late, 'initialConnection', credentials(alice)), [false]);
      assert.match((await late.events.next('error')).error, /too many failed authentication attempts from your address/);
      const overGraphql = await httpRequest(`${node.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${alice.id}:${alice.secretkey}`).toString('base64')}` },
        body: { query: '{ me { id } }' },
        localAddress: guesser.localAddress,
      });
      assert.match(overGraphql.json().errors[0].message, /too many failed authentication attempts/, 'GraphQL shares the ledger');

      await follow(node, bob, alice);
      const followed = await settled.events.next('Followed');
      assert.equal(followed.followerId, bob.id, 'the socket authenticated before still gets its pushes');
    });
  });
});

describe('mutations per user', () => {
  let node;
  before(async () => {
    node = await startNode({ env: { TIDINGS_MUTATIONS_BURST: '3', TIDINGS_MUTATIONS_PER_MINUTE: '60' }, name: 'mutations' });
  });
  after(async () => {
    if (node) await node.stop();
  });

  it('past the burst a mutation is refused with RATE_LIMITED and retryAfterMs; another user is not', async () => {
    const [alice, bob] = await Promise.all([signUp(node, 'alice'), signUp(node, 'bob')]);
    for (let n = 0; n < 3; n += 1) await follow(node, alice, bob);
    const answer = await httpRequest(`${node.url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`${alice.id}:${alice.secretkey}`).toString('base64')}`,
      },
      body: { query: 'mutation($u:ID!){ followUnfollowUser(userId:$u){ following } }', variables: { u: bob.id } },
    });
    const [error] = answer.json().errors;
    assert.equal(error.extensions.code, 'RATE_LIMITED');
    assert.ok(error.extensions.retryAfterMs >= 1 && error.extensions.retryAfterMs <= 1000, JSON.stringify(error));
    await follow(node, bob, alice);
  });
});
