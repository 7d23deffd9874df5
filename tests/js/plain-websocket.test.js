'use strict';
// Plain WebSocket clients (docs/protocol.md §10) with the `ws` package, in
// the same rooms as socket.io-client 4.x: a canvas relay both ways (sender
// excluded, stale in-between frames dropped, a read-only viewer refused),
// an identity header from a trusted proxy, and bad input. The refusals of
// each identity path are in tests/api/plain_identity.rs.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');

const { startServer, signUp, credentials, connect, emitWithAck, withSockets, withTimeout } = require('./helpers');

const SECRET = 'an-hs256-secret-of-32-bytes-or-more!';
let server;
before(async () => {
  server = await startServer({
    env: {
      TIDINGS_TRUSTED_PROXIES: '127.0.0.1',
      TIDINGS_TRUSTED_USER_HEADER: 'x-auth-user',
      TIDINGS_JWT_HS256_SECRET: SECRET,
    },
  });
});
after(async () => {
  if (server) await server.stop();
});

/** A plain client whose frames queue up until `next()` takes them. */
function plain(path, headers = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, { headers });
  const frames = [];
  const waiting = [];
  let closed = null;
  ws.on('message', (data, isBinary) => {
    assert.equal(isBinary, false, 'the server sends text frames only');
    const frame = JSON.parse(data.toString());
    const waiter = waiting.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  const closing = new Promise((resolve) => ws.on('close', (code) => resolve((closed = code))));
  const client = {
    ws,
    send: (value) => ws.send(typeof value === 'string' ? value : JSON.stringify(value)),
    next: () =>
      withTimeout(
        frames.length ? Promise.resolve(frames.shift()) : new Promise((resolve) => waiting.push(resolve)),
        5000,
        () => `no frame on ${path} (closed: ${closed})`,
      ),
    closed: () => withTimeout(closing, 5000, `${path} not closed`),
    /** A barrier: the pong is the next frame, so nothing came before it. */
    async roundTrip() {
      client.send({ type: 'ping' });
      const frame = await client.next();
      assert.equal(frame.type, 'pong', `nothing before the pong: ${JSON.stringify(frame)}`);
    },
  };
  return client;
}

async function signedIn(path, user) {
  const c = plain(path);
  assert.ok((await c.next()).tabWindowId, 'greeted with a tabWindowId');
  c.send({ type: 'auth', ...credentials(user) });
  assert.equal((await c.next()).type, 'auth_success');
  return c;
}

describe('plain WebSocket', () => {
  it('relays a canvas between a plain client and a Socket.IO client, without echo or stale frames', async () => {
    const a = await signUp(server, 'a');
    const b = await signUp(server, 'b');
    const room = 'topic:canvas-js';
    const p = await signedIn(`/ws/${room}`, a);
    await p.roundTrip();
    await withSockets(async (track) => {
      const s = track(await connect(4, server));
      assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(b)), [true]);
      assert.deepEqual(await emitWithAck(s, 'joinRoom', room), [{ ok: true }]);

      p.send({ type: 'FRAME_UPDATE', timestamp: Date.now() - 60000, payload: { stale: true } });
      p.send({ type: 'FRAME_UPDATE', timestamp: Date.now(), userId: 'forged', payload: { n: 1 } });
      await p.roundTrip();
      const event = await s.events.next('event');
      assert.deepEqual(event.payload, { n: 1 }, 'the stale frame was dropped');
      assert.equal(event.userId, a.id);

      const [ack] = await emitWithAck(s, 'event', { type: 'CURSOR_SYNC', timestamp: Date.now(), payload: { x: 2 }, room });
      assert.deepEqual(ack, { ok: true });
      const heard = await p.next();
      assert.deepEqual([heard.type, heard.userId, heard.payload], ['CURSOR_SYNC', b.id, { x: 2 }]);
    });
    p.ws.close();
  });

  it('refuses the relays of a read-only viewer (a JWT rooms claim with publish: false)', async () => {
    const crypto = require('node:crypto');
    const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({
      sub: 'viewer-1',
      exp: Math.floor(Date.now() / 1000) + 600,
      rooms: [{ room: 'topic:canvas-ro', publish: false }],
    })}`;
    const token = `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
    const viewer = plain(`/ws?token=${token}`);
    assert.ok((await viewer.next()).tabWindowId);
    viewer.send({ type: 'DRAW', timestamp: Date.now(), payload: {}, room: 'topic:canvas-ro' });
    const refused = await viewer.next();
    assert.equal(refused.type, 'error');
    assert.match(refused.error, /only listen/);
    assert.equal(refused.message, refused.error);
    viewer.ws.close();
  });

  it('takes its user from a trusted proxy header (the test runs from 127.0.0.1, a trusted proxy here)', async () => {
    const c = plain('/ws', { 'x-auth-user': 'github:ferbs-js' });
    assert.ok((await c.next()).tabWindowId);
    c.send({ joinRoom: 'topic:lobby' });
    await c.roundTrip();
    c.ws.close();
  });

  it('answers bad input with an error or a close code and stays up', async () => {
    const a = await signUp(server, 'a');
    const c = await signedIn('/ws', a);
    for (const text of ['not json', '[1]', '{}', '['.repeat(10000) + ']'.repeat(10000)]) {
      c.send(text);
      const error = await c.next();
      assert.equal(error.type, 'error', text.slice(0, 20));
    }
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.match((await c.next()).error, /binary/);
    await c.roundTrip();
    c.send(JSON.stringify({ x: 'a'.repeat(2_000_000) }));
    assert.equal(await c.closed(), 1009);
    const other = await signedIn('/ws', a);
    await other.roundTrip();
    other.ws.close();
  });
});
