'use strict';
// The social app's own React web client, unchanged, against Tidings. Its
// socket code is mirrored here as it is written: one listener per event,
// each reading exactly the fields the client reads (a missing one is the
// TypeError the page would throw), `getChats` asked with the credentials
// in the payload and again on every `updatedChat`. Run with
// socket.io-client 4.7 (the client's own), 3.x and 2.x, against a server
// started with TIDINGS_SOCIAL_CLIENT_EVENTS=true, as such an app's would be.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  startServer,
  graphql,
  signUp,
  follow,
  getLocation,
  sendMessage,
  credentials,
  connect,
  emitWithAck,
  withSockets,
} = require('./helpers');

const VERSIONS = ['4.7', 3, 2];

let server;
before(async () => {
  // `followed` is sent beside `Followed` only when asked for.
  server = await startServer({ env: { TIDINGS_SOCIAL_CLIENT_EVENTS: 'true' } });
});
after(async () => {
  if (server) await server.stop();
});

/**
 * The client's socket handlers for user `me` on the connected `handle`.
 * `state` is what its pages render; `failures` collects what a page would
 * have thrown.
 */
function socialClient(handle, me) {
  const { socket } = handle;
  const state = { followers: [], messages: new Map(), chats: null, failures: [] };
  const guarded = (event, read) =>
    socket.on(event, (data) => {
      try {
        read(data);
      } catch (err) {
        state.failures.push(`${event}: ${err.message} in ${JSON.stringify(data)}`);
      }
    });
  guarded('followed', (data) => {
    state.followers.push({ id: data.id, followerId: data.follower.id, name: data.follower.name, username: data.follower.username });
  });
  guarded('chatroom', (data) => {
    if (data.type === 'read') {
      for (const m of state.messages.values()) if (m.id <= data.id && m.senderId !== data.readBy.id) m.read = true;
    } else if (data.type === 'deleted') {
      state.messages.delete(data.id);
    } else {
      state.messages.set(data.id, {
        id: data.id,
        senderId: data.sender.id,
        senderName: data.sender.name,
        mine: data.sender.id === me.id,
        content: data.content,
        date: new Date(data.date).toISOString(),
        read: data.read,
        type: data.type,
      });
    }
  });
  guarded('updatedChat', () => socket.emit('getChats', credentials(me)));
  guarded('getChats', (chats) => {
    state.chats = chats.map((chat) => ({
      id: chat.id,
      with: chat.chatroomUsers.filter((u) => u.id !== me.id).map((u) => u.name),
      last: chat.lastMessage && {
        content: chat.lastMessage.content,
        read: chat.lastMessage.read,
        date: new Date(chat.lastMessage.date).toISOString(),
      },
    }));
  });
  return state;
}

/** A socket signed in as `user` the way the client does it, with its handlers. */
async function signedIn(version, user, track) {
  const handle = track(await connect(version, server));
  const state = socialClient(handle, user);
  assert.deepEqual(await emitWithAck(handle, 'initialConnection', credentials(user)), [true]);
  assert.equal(await handle.events.next('auth'), true);
  return { handle, state };
}

/** An acknowledged round trip: what was queued for the socket before has arrived. */
async function barrier(handle) {
  assert.deepEqual(await emitWithAck(handle, 'leaveRoom', 'topic:barrier'), [{ ok: true }]);
}

const MARK_READ = 'mutation($c:ID!){ markChatroomRead(chatroomId:$c) }';
const DELETE = 'mutation($m:ID!){ deleteMessage(messageId:$m) }';
const SET_NAME = 'mutation($n:String){ setName(name:$n){ id } }';

for (const version of VERSIONS) {
  describe(`the social app's client on socket.io-client ${version}`, () => {
    it('a follow arrives as `followed` with `follower.id`', async () => {
      const a = await signUp(server, 'a');
      const b = await signUp(server, 'b');
      await graphql(server, SET_NAME, { n: 'Bea B.' }, b);
      await withSockets(async (track) => {
        const { handle, state } = await signedIn(version, a, track);
        await follow(server, b, a);
        await handle.events.next('followed');
        assert.deepEqual(state.followers, [{ id: b.id, followerId: b.id, name: 'Bea B.', username: b.username }]);
        // Unfollowing sends no `followed`.
        await follow(server, b, a);
        await handle.events.next('Followed');
        await barrier(handle);
        assert.deepEqual(handle.events.unconsumed({ events: ['followed'] }), []);
        assert.deepEqual(state.failures, []);
      });
    });

    it('a message arrives as `chatroom` with `sender.id` and `content`, and the list is asked again', async () => {
      const a = await signUp(server, 'a');
      const b = await signUp(server, 'b');
      await withSockets(async (track) => {
        const sa = await signedIn(version, a, track);
        const sb = await signedIn(version, b, track);
        const room = await getLocation(server, a, b);
        const sent = await sendMessage(server, a, room.id, 'hello <b>b</b>');
        for (const [who, { handle, state }, mine] of [['A', sa, true], ['B', sb, false]]) {
          await handle.events.next('chatroom');
          assert.deepEqual(
            { ...state.messages.get(sent.id), date: undefined },
            { id: sent.id, senderId: a.id, senderName: a.username, mine, content: 'hello b', date: undefined, read: false, type: 'text' },
            who,
          );
          // `updatedChat` made the client re-ask `getChats` (the creation's
          // `updatedChat` did too: take the answers until the message shows).
          let chats;
          do {
            await handle.events.next('getChats');
            chats = state.chats;
          } while (!chats.some((c) => c.last));
          assert.equal(chats[0].id, room.id, who);
          assert.deepEqual(chats[0].with, [mine ? b.username : a.username], who);
          assert.equal(chats[0].last.content, 'hello b', who);
          assert.equal(chats[0].last.read, false, who);
          assert.deepEqual(state.failures, [], who);
        }
      });
    });

    it('`getChats` answers with credentials, without them on a signed-in socket, and refuses wrong ones', async () => {
      const a = await signUp(server, 'a');
      const b = await signUp(server, 'b');
      const room = await getLocation(server, a, b);
      await sendMessage(server, b, room.id, 'are you there?');
      await withSockets(async (track) => {
        // With credentials, on a socket that never signed in.
        const fresh = track(await connect(version, server));
        const state = socialClient(fresh, a);
        fresh.socket.emit('getChats', credentials(a));
        await fresh.events.next('getChats');
        assert.deepEqual(state.chats.map((c) => [c.id, c.with, c.last.content, c.last.read]), [
          [room.id, [b.username], 'are you there?', false],
        ]);

        // Without credentials, on a signed-in socket.
        const { handle, state: signedState } = await signedIn(version, a, track);
        handle.socket.emit('getChats');
        await handle.events.next('getChats');
        assert.equal(signedState.chats[0].id, room.id);

        // Wrong or malformed credentials (the shape auth.test.js sends to
        // initialConnection): an `error` each, and nothing else.
        const since = fresh.events.mark();
        fresh.socket.emit('getChats', { id: a.id, secretkey: 'not-the-secret' });
        assert.equal((await fresh.events.next('error')).error, 'getChats: wrong user id or secret');
        fresh.socket.emit('getChats', { id: a.id });
        assert.equal((await fresh.events.next('error')).error, 'getChats: invalid credentials: secretkey is missing');
        await barrier(fresh);
        assert.deepEqual(fresh.events.unconsumed({ since }), []);
        assert.deepEqual(state.failures, []);
        assert.deepEqual(signedState.failures, []);
      });
    });

    it('reading and deleting reach the other member', async () => {
      const a = await signUp(server, 'a');
      const b = await signUp(server, 'b');
      await withSockets(async (track) => {
        const sa = await signedIn(version, a, track);
        const sb = await signedIn(version, b, track);
        const room = await getLocation(server, a, b);
        const first = await sendMessage(server, a, room.id, 'first');
        const second = await sendMessage(server, a, room.id, 'second');
        for (const { handle } of [sa, sb]) {
          await handle.events.next('chatroom');
          await handle.events.next('chatroom');
        }

        // B reads: A's client marks its messages read.
        const marked = await graphql(server, MARK_READ, { c: room.id }, b);
        assert.equal(marked.markChatroomRead, 2);
        const read = await sa.handle.events.next('chatroom');
        assert.equal(read.type, 'read');
        assert.equal(read.id, second.id);
        assert.equal(read.read, true);
        assert.deepEqual([...sa.state.messages.values()].map((m) => [m.id, m.read]), [
          [first.id, true],
          [second.id, true],
        ]);

        // A deletes the second: B's client drops it.
        await sb.handle.events.next('chatroom'); // B's own copy of the read update
        const deleted = await graphql(server, DELETE, { m: second.id }, a);
        assert.equal(deleted.deleteMessage, true);
        const gone = await sb.handle.events.next('chatroom');
        assert.equal(gone.type, 'deleted');
        assert.equal(gone.id, second.id);
        assert.deepEqual([...sb.state.messages.keys()], [first.id]);
        assert.deepEqual(sa.state.failures, []);
        assert.deepEqual(sb.state.failures, []);
      });
    });
  });
}
