'use strict';
// Rooms, relay and typing (docs/protocol.md §6.6–6.9) with the real
// clients. Runs against one node, and (TIDINGS_JS_TOPOLOGY=cluster) against
// three nodes behind nginx, where successive sockets and GraphQL calls land
// on different nodes, so every relay and eviction here crosses nodes.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  QUIET_MS,
  TRANSPORTS,
  startServer,
  signUp,
  graphql,
  credentials,
  connect,
  emitWithAck,
  withSockets,
  httpRequest,
} = require('./helpers');

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  if (server) await server.stop();
});

const CREATE = 'mutation($n:String!,$m:[ID!]!){ createChatroom(name:$n, memberIds:$m){ id memberIds } }';
const ADD = 'mutation($c:ID!,$u:ID!){ addChatroomMember(chatroomId:$c, userId:$u){ id memberIds } }';
const REMOVE = 'mutation($c:ID!,$u:ID!){ removeChatroomMember(chatroomId:$c, userId:$u){ id memberIds } }';
const SEND = 'mutation($c:ID!,$t:String!){ sendMessage(chatroomId:$c, content:$t){ id } }';

/** A socket of `user` that has had `auth` true. */
async function authenticated(track, user, version = 4, transports = TRANSPORTS.websocket) {
  const s = track(await connect(version, server, { transports }));
  assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(user)), [true]);
  assert.equal(await s.events.next('auth'), true);
  return s;
}

async function join(socket, room) {
  const [ack] = await emitWithAck(socket, 'joinRoom', room);
  assert.deepEqual(ack, { ok: true }, `joinRoom ${JSON.stringify(room)}`);
}

/** Joining `room` is refused: the ack and the `error` event say why. */
async function refused(socket, room, reason) {
  const [ack] = await emitWithAck(socket, 'joinRoom', room);
  assert.ok(ack && typeof ack.error === 'string', `joinRoom ${JSON.stringify(room)} is refused: ${JSON.stringify(ack)}`);
  assert.match(ack.error, reason, `reason for ${JSON.stringify(room)}`);
  const error = await socket.events.next('error');
  assert.equal(error.error, `joinRoom: ${ack.error}`);
}

async function groupChatroom(creator, members) {
  const data = await graphql(server, CREATE, { n: 'group', m: members.map((u) => u.id) }, creator);
  return data.createChatroom.id;
}

function relayEvent(room, overrides = {}) {
  return { type: 'CURSOR_SYNC', timestamp: Date.now(), userId: null, payload: { x: 1, y: 2 }, room, ...overrides };
}

/** Sum of a counter over the nodes (a cluster's /metrics is not behind nginx). */
async function metric(name) {
  const nodes = server.nodes || [server];
  let total = 0;
  for (const node of nodes) {
    const res = await httpRequest(`${node.url}/metrics`);
    assert.equal(res.status, 200);
    const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} in /metrics`);
    total += Number(line.split(' ')[1]);
  }
  return total;
}

describe('joinRoom and leaveRoom', () => {
  it('decides every kind of room by the documented rules', async () => {
    const alice = await signUp(server, 'alice');
    const bob = await signUp(server, 'bob');
    const outsider = await signUp(server, 'out');
    const chatroom = await groupChatroom(alice, [bob]);
    const foreign = await groupChatroom(outsider, []);
    await withSockets(async (track) => {
      const anonymous = track(await connect(4, server));
      await refused(anonymous, 'topic:lobby', /authenticat/);

      const s = await authenticated(track, alice, 2, TRANSPORTS.polling);
      await join(s, 'topic:board-7');
      await join(s, { room: 'topic:a/b.c_d-1' });
      await join(s, 'topic:board-7'); // again: fine
      await join(s, `chatroom:${chatroom}`);
      await refused(s, `chatroom:${foreign}`, /member/);
      await refused(s, 'chatroom:not-a-uuid', /.+/);
      await refused(s, `user:${alice.id}`, /server's own/);
      await refused(s, 'tab:0123456789abcdef0123456789abcdef', /server's own/);
      await refused(s, 'topic:', /.+/);
      await refused(s, 'topic:Upper', /.+/);
      await refused(s, `topic:${'a'.repeat(65)}`, /.+/);
      await refused(s, 'lobby', /.+/);
      await refused(s, 42, /.+/);
      await refused(s, { name: 'topic:x' }, /.+/);

      const [left] = await emitWithAck(s, 'leaveRoom', 'topic:board-7');
      assert.deepEqual(left, { ok: true });
    });
  });

  it('re-authenticating as someone else keeps only the rooms the new identity may hold', async () => {
    const alice = await signUp(server, 'alice');
    const bob = await signUp(server, 'bob');
    const carol = await signUp(server, 'carol');
    const chatroom = await groupChatroom(alice, [carol]);
    await withSockets(async (track) => {
      const s = await authenticated(track, alice);
      await join(s, `chatroom:${chatroom}`);
      await join(s, 'topic:kept');
      const c = await authenticated(track, carol, 3, TRANSPORTS.polling);
      await join(c, `chatroom:${chatroom}`);
      await join(c, 'topic:kept');

      assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(bob)), [true]);
      assert.equal(await s.events.next('auth'), true);
      const mark = s.events.mark();
      const [fromChatroom] = await emitWithAck(c, 'event', relayEvent(`chatroom:${chatroom}`, { type: 'NOTE' }));
      assert.deepEqual(fromChatroom, { ok: true });
      const [fromTopic] = await emitWithAck(c, 'event', relayEvent('topic:kept', { type: 'NOTE' }));
      assert.deepEqual(fromTopic, { ok: true });
      const got = await s.events.next('event');
      assert.equal(got.room, 'topic:kept', 'the topic is kept');
      assert.deepEqual(await s.events.quiet(QUIET_MS, { since: mark, events: ['event'] }), [], 'the chatroom is not');
    });
  });
});

describe('relay of `event`', () => {
  it('reaches every other socket of the room with the server’s userId, not the sender, not other rooms', async () => {
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((p) => signUp(server, p)));
    await withSockets(async (track) => {
      const sa = await authenticated(track, alice);
      const sb = await authenticated(track, bob, 3, TRANSPORTS.polling);
      const sb2 = await authenticated(track, bob, 2, TRANSPORTS.upgrade);
      const sc = await authenticated(track, carol, 2, TRANSPORTS.polling);
      const sd = await authenticated(track, dave);
      for (const s of [sa, sb, sb2, sc]) await join(s, 'topic:r1');
      await join(sd, 'topic:r2');
      const marks = [sa, sd].map((s) => s.events.mark());

      // Alice claims to be Bob.
      const sent = relayEvent('topic:r1', { userId: bob.id, payload: { x: 10, y: 20 } });
      assert.deepEqual((await emitWithAck(sa, 'event', sent))[0], { ok: true });
      for (const s of [sb, sb2, sc]) {
        const got = await s.events.next('event');
        assert.deepEqual(got, { ...sent, userId: alice.id }, 'the server’s userId, everything else as sent');
      }
      assert.deepEqual(await sa.events.quiet(QUIET_MS, { since: marks[0], events: ['event'] }), [], 'not the sender');
      assert.deepEqual(await sd.events.quiet(0, { since: marks[1], events: ['event'] }), [], 'not another room');
    });
  });

  it('answers every malformed event with a clear error', async () => {
    const alice = await signUp(server, 'alice');
    await withSockets(async (track) => {
      const anonymous = track(await connect(4, server));
      const [unauth] = await emitWithAck(anonymous, 'event', relayEvent('topic:x'));
      assert.match(unauth.error, /authenticate/);
      assert.equal((await anonymous.events.next('error')).error, `event: ${unauth.error}`);

      const s = await authenticated(track, alice);
      await join(s, 'topic:x');
      const cases = [
        ['not an object', 'hello', /object/],
        ['null', null, /object/],
        ['a lowercase type', relayEvent('topic:x', { type: 'cursor' }), /type/],
        ['a numeric type', relayEvent('topic:x', { type: 7 }), /type/],
        ['a string timestamp', relayEvent('topic:x', { timestamp: 'now' }), /timestamp/],
        ['a fractional timestamp', relayEvent('topic:x', { timestamp: 1.5 }), /timestamp/],
        ['an array payload', relayEvent('topic:x', { payload: [1] }), /payload/],
        ['a payload over 16 KiB', relayEvent('topic:x', { payload: { blob: 'x'.repeat(17 * 1024) } }), /too large/],
        ['a room not joined', relayEvent('topic:elsewhere'), /room/],
        ['no room', relayEvent(undefined), /room/],
      ];
      for (const [what, message, reason] of cases) {
        const [ack] = await emitWithAck(s, 'event', message);
        assert.ok(ack && typeof ack.error === 'string', `${what}: refused (${JSON.stringify(ack)})`);
        assert.match(ack.error, reason, what);
        assert.equal((await s.events.next('error')).error, `event: ${ack.error}`, what);
      }
    });
  });

  it('drops in-between events 6 s old or ahead, passes 4 s off and ordinary types of any age', async () => {
    const [alice, bob] = await Promise.all([signUp(server, 'alice'), signUp(server, 'bob')]);
    await withSockets(async (track) => {
      const sa = await authenticated(track, alice);
      const sb = await authenticated(track, bob, 3, TRANSPORTS.polling);
      await join(sa, 'topic:cursors');
      await join(sb, 'topic:cursors');
      const dropped = await metric('tidings_relay_stale_dropped_total');
      const mark = sb.events.mark();
      for (const [type, offset] of [
        ['CURSOR_SYNC', -6000],
        ['FRAME_UPDATE', +6000],
        ['TYPING', -60000],
      ]) {
        const errors = sa.events.mark();
        const [ack] = await emitWithAck(sa, 'event', relayEvent('topic:cursors', { type, timestamp: Date.now() + offset }));
        assert.deepEqual(ack, { error: 'stale event dropped' }, `${type} ${offset} ms`);
        assert.deepEqual(await sa.events.quiet(0, { since: errors, events: ['error'] }), [], 'no error event for a stale one');
      }
      assert.deepEqual(await sb.events.quiet(QUIET_MS, { since: mark, events: ['event'] }), [], 'nothing stale relayed');
      assert.equal(await metric('tidings_relay_stale_dropped_total'), dropped + 3, 'each drop counted');

      for (const [type, offset] of [
        ['CURSOR_SYNC', -4000],
        ['FRAME_UPDATE', +4000],
        ['SHAPE_ADDED', -3_600_000],
      ]) {
        const timestamp = Date.now() + offset;
        assert.deepEqual((await emitWithAck(sa, 'event', relayEvent('topic:cursors', { type, timestamp })))[0], { ok: true });
        const got = await sb.events.next('event');
        assert.equal(got.type, type);
        assert.equal(got.timestamp, timestamp);
      }
    });
  });

  it('typing reaches the chatroom’s other sockets as { chatroomId, userId, timestamp }', async () => {
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((p) => signUp(server, p)));
    const chatroom = await groupChatroom(alice, [bob]);
    await withSockets(async (track) => {
      const sa = await authenticated(track, alice);
      const sb = await authenticated(track, bob, 2, TRANSPORTS.polling);
      const sc = await authenticated(track, carol);
      await join(sa, `chatroom:${chatroom}`);
      await join(sb, `chatroom:${chatroom}`);
      await join(sc, 'topic:elsewhere');
      const marks = [sa.events.mark(), sc.events.mark()];
      const before = Date.now();
      assert.deepEqual((await emitWithAck(sa, 'typing', { chatroomId: chatroom }))[0], { ok: true });
      const got = await sb.events.next('typing');
      assert.equal(got.chatroomId, chatroom);
      assert.equal(got.userId, alice.id);
      assert.ok(got.timestamp >= before - 1000 && got.timestamp <= Date.now() + 1000, `server clock: ${got.timestamp}`);
      assert.deepEqual(await sa.events.quiet(QUIET_MS, { since: marks[0], events: ['typing'] }), [], 'not the sender');
      assert.deepEqual(await sc.events.quiet(0, { since: marks[1], events: ['typing'] }), [], 'not outsiders');

      const [notJoined] = await emitWithAck(sc, 'typing', { chatroomId: chatroom });
      assert.ok(notJoined.error, `a chatroom not joined is refused: ${JSON.stringify(notJoined)}`);
    });
  });
});

describe('live membership', () => {
  it('a removed member hears nothing more of the room, on any of their sockets; an added one is told', async () => {
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((p) => signUp(server, p)));
    const chatroom = await groupChatroom(alice, [bob, carol]);
    const room = `chatroom:${chatroom}`;
    await withSockets(async (track) => {
      const sa = await authenticated(track, alice);
      // Bob on two sockets (in a cluster: on two nodes), Carol on one.
      const bobs = [await authenticated(track, bob, 4), await authenticated(track, bob, 3, TRANSPORTS.polling)];
      const sc = await authenticated(track, carol, 2, TRANSPORTS.polling);
      const sd = await authenticated(track, dave);
      for (const s of [sa, ...bobs, sc]) await join(s, room);

      const data = await graphql(server, REMOVE, { c: chatroom, u: bob.id }, alice);
      assert.ok(!data.removeChatroomMember.memberIds.includes(bob.id));
      const marks = bobs.map((s) => s.events.mark());
      for (const s of bobs) {
        const told = await s.events.next('updatedChat');
        assert.equal(told.chatroomId, chatroom);
        assert.ok(!told.memberIds.includes(bob.id), 'the removed user is told, without them in memberIds');
      }

      // At once: relay, typing and messages reach Carol but not Bob.
      assert.deepEqual((await emitWithAck(sa, 'event', relayEvent(room, { type: 'NOTE' })))[0], { ok: true });
      assert.deepEqual((await emitWithAck(sa, 'typing', { chatroomId: chatroom }))[0], { ok: true });
      await graphql(server, SEND, { c: chatroom, t: 'after the removal' }, alice);
      assert.equal((await sc.events.next('event')).type, 'NOTE');
      assert.equal((await sc.events.next('typing')).chatroomId, chatroom);
      assert.equal((await sc.events.next('chatroom')).message.content, 'after the removal');
      for (const [k, s] of bobs.entries()) {
        assert.deepEqual(
          await s.events.quiet(QUIET_MS, { since: marks[k], events: ['event', 'typing', 'chatroom'] }),
          [],
          `Bob's socket ${k + 1} hears nothing more of the room`,
        );
      }
      await refused(bobs[0], room, /member/);

      await graphql(server, ADD, { c: chatroom, u: dave.id }, carol);
      const welcome = await sd.events.next('updatedChat');
      assert.equal(welcome.chatroomId, chatroom);
      assert.ok(welcome.memberIds.includes(dave.id));
      await join(sd, room);
    });
  });
});
