'use strict';
// Presence (docs/protocol.md §6.10) with the real clients: followers hear
// each online/offline transition once, however many tabs; `isOnline` and
// `onlineFollowing` agree. With TIDINGS_JS_TOPOLOGY=cluster the tabs and the
// followers land on different nodes behind nginx.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  QUIET_MS,
  TRANSPORTS,
  startServer,
  signUp,
  follow,
  graphql,
  credentials,
  connect,
  emitWithAck,
  withSockets,
  waitFor,
} = require('./helpers');

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  if (server) await server.stop();
});

async function authenticated(track, user, version = 4, transports = TRANSPORTS.websocket) {
  const s = track(await connect(version, server, { transports }));
  assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(user)), [true]);
  assert.equal(await s.events.next('auth'), true);
  return s;
}

async function expectPresence(socket, user, online) {
  const event = await socket.events.next('presence');
  assert.equal(event.userId, user.id);
  assert.equal(event.online, online);
  assert.ok(Number.isInteger(event.timestamp), `integer timestamp: ${event.timestamp}`);
}

async function isOnline(asker, user) {
  const data = await graphql(server, 'query($u:ID!){ isOnline(userId:$u) }', { u: user.id }, asker);
  return data.isOnline;
}

function closed(handle) {
  handle.close();
}

describe('presence', () => {
  it('followers hear one online and one offline, however many tabs', async () => {
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((p) => signUp(server, p)));
    await follow(server, bob, alice);
    await withSockets(async (track) => {
      const watchers = [await authenticated(track, bob), await authenticated(track, bob, 2, TRANSPORTS.polling)];
      const sc = await authenticated(track, carol, 3, TRANSPORTS.polling);
      const carolMark = sc.events.mark();
      assert.equal(await isOnline(bob, alice), false);

      const tabs = [
        await authenticated(track, alice, 4),
        await authenticated(track, alice, 3, TRANSPORTS.polling),
        await authenticated(track, alice, 2, TRANSPORTS.upgrade),
      ];
      for (const w of watchers) await expectPresence(w, alice, true);
      assert.equal(await isOnline(bob, alice), true);
      const marks = watchers.map((w) => w.events.mark());

      closed(tabs[0]);
      closed(tabs[1]);
      for (const [k, w] of watchers.entries()) {
        assert.deepEqual(await w.events.quiet(QUIET_MS, { since: marks[k], events: ['presence'] }), [], 'tabs 1–2 closing change nothing');
      }
      assert.equal(await isOnline(bob, alice), true, 'tab 3 is still open');

      closed(tabs[2]);
      for (const w of watchers) await expectPresence(w, alice, false);
      for (const [k, w] of watchers.entries()) {
        assert.deepEqual(await w.events.quiet(QUIET_MS, { since: marks[k], events: ['presence'] }), [], 'one offline');
      }
      assert.equal(await isOnline(bob, alice), false);
      assert.deepEqual(await sc.events.quiet(0, { since: carolMark, events: ['presence'] }), [], 'Carol does not follow Alice');
    });
  });

  it('re-authenticating as the same user changes nothing; as someone else moves presence', async () => {
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((p) => signUp(server, p)));
    await follow(server, bob, alice);
    await follow(server, bob, carol);
    await withSockets(async (track) => {
      const sb = await authenticated(track, bob, 3, TRANSPORTS.polling);
      const s = await authenticated(track, alice);
      await expectPresence(sb, alice, true);

      const mark = sb.events.mark();
      assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(alice)), [true]);
      assert.equal(await s.events.next('auth'), true);
      assert.deepEqual(await sb.events.quiet(QUIET_MS, { since: mark, events: ['presence'] }), [], 'the same user again: no transition');

      assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(carol)), [true]);
      const moved = [await sb.events.next('presence'), await sb.events.next('presence')];
      const byUser = Object.fromEntries(moved.map((p) => [p.userId, p.online]));
      assert.deepEqual(byUser, { [alice.id]: false, [carol.id]: true }, `Alice offline, Carol online: ${JSON.stringify(moved)}`);
      assert.deepEqual([await isOnline(bob, alice), await isOnline(bob, carol)], [false, true]);
    });
  });

  it('a failed re-authentication takes the socket’s user offline; onlineFollowing lists who is online', async () => {
    const [alice, bob, dave] = await Promise.all(['alice', 'bob', 'dave'].map((p) => signUp(server, p)));
    await follow(server, bob, alice);
    await follow(server, bob, dave);
    await withSockets(async (track) => {
      const sb = await authenticated(track, bob);
      const sa = await authenticated(track, alice, 2, TRANSPORTS.polling);
      await expectPresence(sb, alice, true);
      const online = await graphql(server, '{ onlineFollowing { id username } }', {}, bob);
      assert.deepEqual(online.onlineFollowing, [{ id: alice.id, username: alice.username }], 'Alice, not Dave');

      assert.deepEqual(await emitWithAck(sa, 'initialConnection', { id: alice.id, secretkey: 'wrong' }), [false]);
      await expectPresence(sb, alice, false);
      await waitFor(async () => (await graphql(server, '{ onlineFollowing { id } }', {}, bob)).onlineFollowing.length === 0);
    });
  });
});
