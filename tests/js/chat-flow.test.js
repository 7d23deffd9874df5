'use strict';
// The chat flow: A (over WebSocket) and B (over long-polling) each hold a
// socket; getLocation creates their direct chatroom, A sends a message
// carrying markup, and both sockets get it, cleaned, as `chatroom` and
// `updatedChat`. Run with every client version.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  VERSIONS,
  TRANSPORTS,
  startServer,
  signUp,
  getLocation,
  sendMessage,
  credentials,
  connect,
  emitWithAck,
  withSockets,
} = require('./helpers');

const RAW = '<script>alert(1)</script>5 < 6 & "quotes"';
const CLEAN = '5 < 6 & "quotes"';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  if (server) await server.stop();
});

async function authenticated(version, transports, user, track) {
  const s = track(await connect(version, server, { transports }));
  assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(user)), [true]);
  assert.equal(await s.events.next('auth'), true);
  return s;
}

function assertTimestamp(value, since, what) {
  assert.equal(typeof value, 'number', `${what} is a number`);
  assert.ok(Number.isInteger(value), `${what} is an integer: ${value}`);
  assert.ok(value >= since - 1000 && value <= Date.now() + 1000, `${what} ${value} is ms of now (${since})`);
}

for (const version of VERSIONS) {
  describe(`socket.io-client ${version}.x`, () => {
    it('A on websocket and B on polling chat in a direct chatroom', async () => {
      const a = await signUp(server, 'a');
      const b = await signUp(server, 'b');
      await withSockets(async (track) => {
        const sa = await authenticated(version, TRANSPORTS.websocket, a, track);
        const sb = await authenticated(version, TRANSPORTS.polling, b, track);
        const marks = [sa.events.mark(), sb.events.mark()];
        const sockets = [
          ['A (websocket)', sa],
          ['B (polling)', sb],
        ];

        // getLocation creates the room and announces it to both.
        const since = Date.now();
        const room = await getLocation(server, a, b);
        assert.equal(typeof room.id, 'string');
        for (const [who, s] of sockets) {
          const chat = await s.events.next('updatedChat');
          assert.equal(chat.chatroomId, room.id, `${who}: chatroomId`);
          assert.deepEqual([...chat.memberIds].sort(), [a.id, b.id].sort(), `${who}: memberIds`);
          assert.equal(chat.lastMessage, null, `${who}: no lastMessage yet`);
          assertTimestamp(chat.timestamp, since, `${who}: updatedChat.timestamp`);
        }
        // Asking again (from either side) finds the same room.
        assert.equal((await getLocation(server, b, a)).id, room.id);

        // A message with markup arrives cleaned, as `chatroom` then `updatedChat`.
        const sentAt = Date.now();
        const sent = await sendMessage(server, a, room.id, RAW);
        assert.equal(sent.content, CLEAN, 'sendMessage answers the cleaned content');
        for (const [who, s] of sockets) {
          const { chatroomId, message } = await s.events.next('chatroom');
          assert.equal(chatroomId, room.id, `${who}: chatroom.chatroomId`);
          assert.equal(message.id, sent.id, `${who}: message.id`);
          assert.equal(message.chatroomId, room.id, `${who}: message.chatroomId`);
          assert.equal(message.senderId, a.id, `${who}: message.senderId`);
          assert.equal(message.senderUsername, a.username, `${who}: message.senderUsername`);
          assert.equal(message.content, CLEAN, `${who}: message.content`);
          assertTimestamp(message.createdAt, sentAt, `${who}: message.createdAt`);

          const chat = await s.events.next('updatedChat');
          assert.equal(chat.chatroomId, room.id, `${who}: updatedChat.chatroomId`);
          assert.deepEqual([...chat.memberIds].sort(), [a.id, b.id].sort(), `${who}: memberIds`);
          assert.deepEqual(chat.lastMessage, message, `${who}: lastMessage is the message`);
          assertTimestamp(chat.timestamp, sentAt, `${who}: updatedChat.timestamp`);
        }
        sockets.forEach(([who, s], i) => {
          assert.deepEqual(s.events.unconsumed({ since: marks[i] }), [], `${who}: no other events arrived`);
        });
      });
    });
  });
}
