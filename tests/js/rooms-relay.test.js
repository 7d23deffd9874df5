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

/**
 * `event` (joinRoom by default) with `room` is refused: the ack and the
 * `error` event say why.
 */
async function refused(socket, room, reason, event = 'joinRoom') {
  const [ack] = await emitWithAck(socket, event, room);
  assert.ok(ack && typeof ack.error === 'string', `${event} ${JSON.stringify(room)} is refused: ${JSON.stringify(ack)}`);
  assert.match(ack.error, reason, `reason for ${event} ${JSON.stringify(room)}`);
  const error = await socket.events.next('error');
  assert.equal(error.error, `${event}: ${ack.error}`, `the \`error\` event of ${event} ${JSON.stringify(room)}`);
}

/** `emit` (`event` or `typing`) is refused: the ack and the `error` event give the same reason. */
async function refusedWithError(socket, emit, message, reason, what) {
  const [ack] = await emitWithAck(socket, emit, message);
  assert.ok(ack && typeof ack.error === 'string', `${what}: refused (${JSON.stringify(ack)})`);
  assert.match(ack.error, reason, what);
  assert.equal((await socket.events.next('error')).error, `${emit}: ${ack.error}`, `${what}: the \`error\` event`);
}

/** Relays `message` from `socket` and asserts the ack says ok. */
async function relayed(socket, message) {
  const [ack] = await emitWithAck(socket, 'event', message);
  assert.deepEqual(ack, { ok: true }, `${message.type} to ${message.room} is relayed`);
}

async function groupChatroom(creator, members) {
  const data = await graphql(server, CREATE, { n: 'group', m: members.map((u) => u.id) }, creator);
  return data.createChatroom.id;
}

/**
 * `memberIds` holds exactly `users` (members added together, as by
 * createChatroom, joined at the same moment: their order is not specified).
 */
function assertMembers(memberIds, users, message) {
  assert.deepEqual([...memberIds].sort(), users.map((u) => u.id).sort(), message);
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
      await refused(anonymous, `chatroom:${chatroom}`, /authenticat/);

      const s = await authenticated(track, alice, 2, TRANSPORTS.polling);
      await join(s, 'topic:board-7');
      await join(s, { room: 'topic:a/b.c_d-1' });
      await join(s, 'topic:board-7'); // again: fine
      await join(s, `topic:${'a'.repeat(64)}`); // the longest name
      await join(s, 'topic:0123456789abcdefghijklmnopqrstuvwxyz_-./'); // every allowed character
      await join(s, `chatroom:${chatroom}`);
      await join(s, { room: `chatroom:${chatroom}` });
      await refused(s, `chatroom:${foreign}`, /member/);
      await refused(s, { room: `chatroom:${foreign}` }, /member/);
      await refused(s, 'chatroom:not-a-uuid', /.+/);
      await refused(s, `user:${alice.id}`, /server's own/);
      await refused(s, `user:${bob.id}`, /server's own/);
      await refused(s, 'tab:0123456789abcdef0123456789abcdef', /server's own/);
      await refused(s, 'topic:', /.+/);
      await refused(s, 'topic:Upper', /.+/);
      await refused(s, 'topic:with space', /.+/);
      await refused(s, `topic:${'a'.repeat(65)}`, /.+/);
      await refused(s, 'lobby', /.+/);
      await refused(s, 42, /.+/);
      await refused(s, null, /.+/);
      await refused(s, { name: 'topic:x' }, /.+/);

      // Without an ack callback the refusal still arrives, as `error`.
      s.socket.emit('joinRoom', 'topic:No-Ack');
      assert.match((await s.events.next('error')).error, /^joinRoom: topic names/, 'refusal without an ack');

      const [left] = await emitWithAck(s, 'leaveRoom', 'topic:board-7');
      assert.deepEqual(left, { ok: true });
      const [leftObject] = await emitWithAck(s, 'leaveRoom', { room: 'topic:a/b.c_d-1' });
      assert.deepEqual(leftObject, { ok: true });
      await refused(s, 'lobby', /.+/, 'leaveRoom');
      await refused(s, 42, /.+/, 'leaveRoom');
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
      await relayed(c, relayEvent(`chatroom:${chatroom}`, { type: 'NOTE' }));
      await relayed(c, relayEvent('topic:kept', { type: 'NOTE' }));
      const got = await s.events.next('event');
      assert.equal(got.room, 'topic:kept', 'the topic is kept');
      assert.deepEqual(await s.events.quiet(QUIET_MS, { since: mark, events: ['event'] }), [], 'the chatroom is not');
    });
  });

  it('a socket whose re-authentication fails keeps no room', async () => {
    const [alice, carol] = await Promise.all([signUp(server, 'alice'), signUp(server, 'carol')]);
    await withSockets(async (track) => {
      const s = await authenticated(track, alice, 3, TRANSPORTS.polling);
      const c = await authenticated(track, carol);
      await join(s, 'topic:lost');
      await join(c, 'topic:lost');

      assert.deepEqual(await emitWithAck(s, 'initialConnection', { id: alice.id, secretkey: 'wrong' }), [false]);
      assert.equal(await s.events.next('auth'), false);
      const mark = s.events.mark();
      await relayed(c, relayEvent('topic:lost', { type: 'NOTE' }));
      assert.deepEqual(await s.events.quiet(QUIET_MS, { since: mark, events: ['event'] }), [], 'the unbound socket left the topic');
      await refusedWithError(s, 'event', relayEvent('topic:lost'), /authenticate/, 'the unbound socket relays');
    });
  });
});

describe('relay of `event`', () => {
  it('reaches every other socket of the room with the server’s userId, not the sender, not other rooms; leaveRoom stops it', async () => {
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
      await relayed(sa, sent);
      for (const s of [sb, sb2, sc]) {
        const got = await s.events.next('event');
        assert.deepEqual(got, { ...sent, userId: alice.id }, `${s.events.label}: the server’s userId, everything else as sent`);
      }
      // Carol, on 2.x, relays back: Alice (4.x) hears her.
      const reply = relayEvent('topic:r1', { type: 'SHAPE_ADDED', payload: { id: 'c1' } });
      await relayed(sc, reply);
      assert.deepEqual(await sa.events.next('event'), { ...reply, userId: carol.id }, 'a 2.x sender reaches a 4.x socket');
      for (const s of [sb, sb2]) assert.equal((await s.events.next('event')).payload.id, 'c1');
      assert.deepEqual(await sc.events.quiet(0, { events: ['event'] }), [], 'Carol does not hear herself');
      assert.deepEqual(await sa.events.quiet(QUIET_MS, { since: marks[0], events: ['event'] }), [], 'not the sender');
      assert.deepEqual(await sd.events.quiet(0, { since: marks[1], events: ['event'] }), [], 'not another room');

      // Bob's second socket leaves: the next event reaches only the others.
      assert.deepEqual((await emitWithAck(sb2, 'leaveRoom', 'topic:r1'))[0], { ok: true });
      const leftMark = sb2.events.mark();
      await relayed(sa, relayEvent('topic:r1', { type: 'AFTER_LEAVE' }));
      for (const s of [sb, sc]) assert.equal((await s.events.next('event')).type, 'AFTER_LEAVE');
      assert.deepEqual(await sb2.events.quiet(QUIET_MS, { since: leftMark, events: ['event'] }), [], 'a socket that left hears nothing');
    });
  });

  it('answers every malformed event with a clear error', async () => {
    const alice = await signUp(server, 'alice');
    await withSockets(async (track) => {
      const anonymous = track(await connect(4, server));
      await refusedWithError(anonymous, 'event', relayEvent('topic:x'), /authenticate/, 'an unauthenticated socket');

      const s = await authenticated(track, alice);
      await join(s, 'topic:x');
      const cases = [
        ['not an object', 'hello', /object/],
        ['null', null, /object/],
        ['an array', [relayEvent('topic:x')], /object/],
        ['a lowercase type', relayEvent('topic:x', { type: 'cursor' }), /type/],
        ['a numeric type', relayEvent('topic:x', { type: 7 }), /type/],
        ['a type of 65 characters', relayEvent('topic:x', { type: `A${'B'.repeat(64)}` }), /type/],
        ['no type', relayEvent('topic:x', { type: undefined }), /type/],
        ['a string timestamp', relayEvent('topic:x', { timestamp: 'now' }), /timestamp/],
        ['a fractional timestamp', relayEvent('topic:x', { timestamp: 1.5 }), /timestamp/],
        ['no timestamp', relayEvent('topic:x', { timestamp: undefined }), /timestamp/],
        ['an array payload', relayEvent('topic:x', { payload: [1] }), /payload/],
        ['a string payload', relayEvent('topic:x', { payload: 'x' }), /payload/],
        ['no payload', relayEvent('topic:x', { payload: undefined }), /payload/],
        ['a payload over 16 KiB', relayEvent('topic:x', { payload: { blob: 'x'.repeat(17 * 1024) } }), /too large/],
        ['a room not joined', relayEvent('topic:elsewhere'), /room/],
        ['a server room', relayEvent(`user:${alice.id}`), /room/],
        ['no room', relayEvent(undefined), /room/],
      ];
      for (const [what, message, reason] of cases) await refusedWithError(s, 'event', message, reason, what);
      await relayed(s, relayEvent('topic:x'));
    });
  });

  it(
    'an in-between event with a timestamp near the end of the 64-bit range is refused or dropped, with an ack',
    async () => {
      const alice = await signUp(server, 'alice');
      await withSockets(async (track) => {
        const s = await authenticated(track, alice);
        await join(s, 'topic:far');
        const [ack] = await emitWithAck(s, 'event', relayEvent('topic:far', { timestamp: -9223372036854775000 }), 2000);
        assert.ok(ack && typeof ack.error === 'string', `refused or dropped: ${JSON.stringify(ack)}`);
      });
    },
  );

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
        ['TYPING', -6000],
        ['TYPING', -60000],
      ]) {
        const errors = sa.events.mark();
        const [ack] = await emitWithAck(sa, 'event', relayEvent('topic:cursors', { type, timestamp: Date.now() + offset }));
        assert.deepEqual(ack, { error: 'stale event dropped' }, `${type} ${offset} ms`);
        assert.deepEqual(await sa.events.quiet(0, { since: errors, events: ['error'] }), [], 'no error event for a stale one');
      }
      assert.deepEqual(await sb.events.quiet(QUIET_MS, { since: mark, events: ['event'] }), [], 'nothing stale relayed');
      assert.equal(await metric('tidings_relay_stale_dropped_total'), dropped + 4, 'each drop counted in /metrics');

      for (const [type, offset] of [
        ['CURSOR_SYNC', -4000],
        ['FRAME_UPDATE', +4000],
        ['TYPING', -4000],
        ['SHAPE_ADDED', -3_600_000],
        ['SHAPE_ADDED', +3_600_000],
      ]) {
        const timestamp = Date.now() + offset;
        await relayed(sa, relayEvent('topic:cursors', { type, timestamp }));
        const got = await sb.events.next('event');
        assert.equal(got.type, type, `${type} ${offset} ms is relayed`);
        assert.equal(got.timestamp, timestamp, `${type} keeps its timestamp`);
      }
      assert.equal(await metric('tidings_relay_stale_dropped_total'), dropped + 4, 'nothing more counted');
    });
  });

  it('typing reaches the chatroom’s other sockets as { chatroomId, userId, timestamp }; bad ones get an error', async () => {
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
      assert.deepEqual(Object.keys(got).sort(), ['chatroomId', 'timestamp', 'userId'], 'exactly the three fields');
      assert.equal(got.chatroomId, chatroom);
      assert.equal(got.userId, alice.id);
      assert.ok(got.timestamp >= before - 1000 && got.timestamp <= Date.now() + 1000, `server clock: ${got.timestamp}`);
      // And back, from 2.x over polling to 4.x.
      assert.deepEqual((await emitWithAck(sb, 'typing', { chatroomId: chatroom }))[0], { ok: true });
      assert.equal((await sa.events.next('typing')).userId, bob.id);
      assert.deepEqual(await sa.events.quiet(QUIET_MS, { since: marks[0], events: ['typing'] }), [], 'not the sender');
      assert.deepEqual(await sc.events.quiet(0, { since: marks[1], events: ['typing'] }), [], 'not outsiders');

      await refusedWithError(sc, 'typing', { chatroomId: chatroom }, /join/, 'typing to a chatroom not joined');
      await refusedWithError(sc, 'typing', 'hello', /chatroomId/, 'typing with a string');
      await refusedWithError(sc, 'typing', { chatroomId: 'nope' }, /chatroomId/, 'typing with a bad id');
      const anonymous = track(await connect(3, server, { transports: TRANSPORTS.polling }));
      await refusedWithError(anonymous, 'typing', { chatroomId: chatroom }, /authenticate/, 'typing unauthenticated');
    });
  });
});

const LEAVE = 'mutation($c:ID!){ leaveChatroom(chatroomId:$c) }';

/**
 * Right after a removal answered: `speaker` relays an event, types and
 * sends a message in `chatroom`. Every socket of `stayed` must receive all
 * three, and no socket of `gone` any of them (since `goneMarks`).
 */
async function assertCutOff(speaker, sender, chatroom, { stayed, gone, goneMarks }) {
  const room = `chatroom:${chatroom}`;
  await relayed(speaker, relayEvent(room, { type: 'AFTER' }));
  assert.deepEqual((await emitWithAck(speaker, 'typing', { chatroomId: chatroom }))[0], { ok: true });
  await graphql(server, SEND, { c: chatroom, t: 'after' }, sender);
  for (const s of stayed) {
    assert.equal((await s.events.next('event')).type, 'AFTER', `${s.events.label}: still hears events`);
    assert.equal((await s.events.next('typing')).chatroomId, chatroom, `${s.events.label}: still hears typing`);
    assert.equal((await s.events.next('chatroom')).message.content, 'after', `${s.events.label}: still hears messages`);
  }
  const heard = await Promise.all(
    gone.map((s, k) => s.events.quiet(QUIET_MS, { since: goneMarks[k], events: ['event', 'typing', 'chatroom'] })),
  );
  gone.forEach((s, k) => assert.deepEqual(heard[k], [], `${s.events.label}: hears nothing more of the room`));
}

describe('group chatrooms and live membership', () => {
  it('createChatroom tells every member (and nobody else); addChatroomMember tells the new member too', async () => {
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((p) => signUp(server, p)));
    await withSockets(async (track) => {
      const sa = await authenticated(track, alice);
      const sb = await authenticated(track, bob, 2, TRANSPORTS.polling);
      const sc = await authenticated(track, carol, 3, TRANSPORTS.polling);
      const sd = await authenticated(track, dave);
      const daveMark = sd.events.mark();

      const { createChatroom: created } = await graphql(server, CREATE, { n: 'Trip', m: [bob.id, carol.id] }, alice);
      const members = [alice, bob, carol];
      assertMembers(created.memberIds, members, 'the creator and the members');
      for (const s of [sa, sb, sc]) {
        const told = await s.events.next('updatedChat');
        assert.equal(told.chatroomId, created.id, `${s.events.label}: updatedChat for the new chatroom`);
        assertMembers(told.memberIds, members, `${s.events.label}: every member`);
        assert.equal(told.lastMessage, null, `${s.events.label}: no message yet`);
        assert.ok(Number.isInteger(told.timestamp), `integer timestamp: ${told.timestamp}`);
      }
      for (const s of [sa, sb, sc]) await join(s, `chatroom:${created.id}`);
      await refused(sd, `chatroom:${created.id}`, /member/);
      assert.deepEqual(
        await sd.events.quiet(QUIET_MS, { since: daveMark, events: ['updatedChat'] }),
        [],
        'a non-member is not told',
      );

      // Bob (a member, not the creator) adds Dave: everyone hears of it.
      await graphql(server, ADD, { c: created.id, u: dave.id }, bob);
      for (const s of [sa, sb, sc, sd]) {
        const told = await s.events.next('updatedChat');
        assert.equal(told.chatroomId, created.id);
        assertMembers(told.memberIds, [...members, dave], `${s.events.label}: Dave is a member now`);
        assert.equal(told.memberIds.at(-1), dave.id, `${s.events.label}: the latest to join comes last`);
      }
      await join(sd, `chatroom:${created.id}`);
      await relayed(sd, relayEvent(`chatroom:${created.id}`, { type: 'HELLO' }));
      for (const s of [sa, sb, sc]) assert.equal((await s.events.next('event')).userId, dave.id);
    });
  });

  it('a removed member hears nothing more of the room on any of their sockets, from the moment the mutation answers', async () => {
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((p) => signUp(server, p)));
    const chatroom = await groupChatroom(alice, [bob, carol]);
    const room = `chatroom:${chatroom}`;
    await withSockets(async (track) => {
      const sa = await authenticated(track, alice);
      // Bob on two sockets (in a cluster: on two nodes), Carol on one.
      const bobs = [await authenticated(track, bob, 4), await authenticated(track, bob, 3, TRANSPORTS.polling)];
      const sc = await authenticated(track, carol, 2, TRANSPORTS.polling);
      for (const s of [sa, ...bobs, sc]) await join(s, room);
      await relayed(sa, relayEvent(room, { type: 'BEFORE' }));
      for (const s of [...bobs, sc]) assert.equal((await s.events.next('event')).type, 'BEFORE', `${s.events.label}: in the room`);

      const marks = bobs.map((s) => s.events.mark());
      const data = await graphql(server, REMOVE, { c: chatroom, u: bob.id }, alice);
      assertMembers(data.removeChatroomMember.memberIds, [alice, carol], 'the mutation answers without Bob');
      // At once, without waiting for anything: relay, typing and messages
      // reach Carol but no socket of Bob's.
      await assertCutOff(sa, alice, chatroom, { stayed: [sc], gone: bobs, goneMarks: marks });

      for (const s of [...bobs, sa, sc]) {
        const told = await s.events.next('updatedChat');
        assert.equal(told.chatroomId, chatroom);
        assert.equal(told.lastMessage, null, `${s.events.label}: the removal's updatedChat comes first`);
        assertMembers(told.memberIds, [alice, carol], `${s.events.label}: told, without Bob in memberIds`);
      }
      for (const s of [sa, sc]) assert.equal((await s.events.next('updatedChat')).lastMessage.content, 'after');
      for (const [k, s] of bobs.entries()) {
        assert.deepEqual(
          s.events.unconsumed({ since: marks[k], events: ['updatedChat'] }),
          [],
          `${s.events.label}: not told of the message sent after the removal`,
        );
      }
      await refused(bobs[0], room, /member/);
      await refusedWithError(bobs[1], 'typing', { chatroomId: chatroom }, /join/, 'Bob types to the room he was removed from');
    });
  });

  it('leaveChatroom: the leaver’s sockets hear nothing more, the others are told', async () => {
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((p) => signUp(server, p)));
    const chatroom = await groupChatroom(alice, [bob, carol]);
    const room = `chatroom:${chatroom}`;
    await withSockets(async (track) => {
      const sa = await authenticated(track, alice, 3, TRANSPORTS.polling);
      const sb = await authenticated(track, bob);
      const carols = [await authenticated(track, carol), await authenticated(track, carol, 2, TRANSPORTS.polling)];
      for (const s of [sa, sb, ...carols]) await join(s, room);

      const marks = carols.map((s) => s.events.mark());
      assert.deepEqual(await graphql(server, LEAVE, { c: chatroom }, carol), { leaveChatroom: true });
      await assertCutOff(sb, bob, chatroom, { stayed: [sa], gone: carols, goneMarks: marks });
      for (const s of [sa, sb, ...carols]) {
        const told = await s.events.next('updatedChat');
        assert.equal(told.lastMessage, null, `${s.events.label}: the leave's updatedChat comes first`);
        assertMembers(told.memberIds, [alice, bob], `${s.events.label}: told, without Carol`);
      }
      for (const [k, s] of carols.entries()) {
        assert.deepEqual(
          s.events.unconsumed({ since: marks[k], events: ['updatedChat'] }),
          [],
          `${s.events.label}: not told of the message sent after leaving`,
        );
      }
      await refused(carols[1], room, /member/);
      await assert.rejects(graphql(server, LEAVE, { c: chatroom }, carol), /NOT_FOUND/, 'leaving again: not a member');
    });
  });
});
