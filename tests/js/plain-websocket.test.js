'use strict';
// Plain WebSocket clients (docs/protocol.md §10) with the `ws` package, in
// the same rooms as socket.io-client 4.x: a canvas relay both ways (sender
// excluded, stale in-between frames dropped, a read-only viewer refused),
// an identity header from a trusted proxy, a backend push to an outside
// user reaching both transports once each, and bad input. The refusals of
// each identity path are in tests/api/plain_identity.rs and
// tests/api/plain_auth_proxy.rs.
//
// With TIDINGS_JS_TOPOLOGY=cluster (scripts/test) it runs through nginx in
// front of three nodes: every plain client and socket takes the next
// loopback source address, so they land on different nodes and relays and
// pushes cross Redis.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');

const crypto = require('node:crypto');
const { startServer, signUp, credentials, connect, emitWithAck, withSockets, withTimeout, httpRequest } = require('./helpers');

const SECRET = 'an-hs256-secret-of-32-bytes-or-more!';
const API_KEY = crypto.randomBytes(24).toString('hex');
let server;
before(async () => {
  server = await startServer({
    env: {
      TIDINGS_TRUSTED_PROXIES: '127.0.0.1',
      TIDINGS_TRUSTED_USER_HEADER: 'x-auth-user',
      TIDINGS_JWT_HS256_SECRET: SECRET,
      TIDINGS_API_KEY: API_KEY,
    },
  });
});
after(async () => {
  if (server) await server.stop();
});

/** A plain client whose frames queue up until `next()` takes them. */
function plain(path, headers = {}) {
  // A cluster hands out source addresses that reach each node in turn.
  const localAddress = server.nextLocalAddress ? server.nextLocalAddress() : undefined;
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, { headers, localAddress });
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

/** An HS256 token with `claims`, valid for ten minutes. */
function hs256(claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 600, ...claims })}`;
  return `${body}.${crypto.createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}

async function apiPush(body) {
  const res = await httpRequest(`${server.url}/api/push`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}` },
    body,
  });
  assert.equal(res.status, 202, `POST /api/push: ${res.text}`);
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
    const token = hs256({ sub: 'viewer-1', rooms: [{ room: 'topic:canvas-ro', publish: false }] });
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

  it('delivers a backend push to an outside user on a plain connection and a Socket.IO tab, once each', async () => {
    const user = `github:push-${crypto.randomBytes(4).toString('hex')}`;
    const token = hs256({ sub: user });
    const p = plain(`/ws?token=${token}`);
    assert.ok((await p.next()).tabWindowId);
    await p.roundTrip();
    await withSockets(async (track) => {
      const s = track(await connect(4, server));
      const [ok] = await emitWithAck(s, 'initialConnection', { token });
      assert.equal(ok, true, 'the same JWT signs a Socket.IO tab in');
      // Both pushes reach both; the second is the sentinel: anything of the
      // first sent twice would come before it.
      await apiPush({ users: [user], data: { n: 1 } });
      await apiPush({ users: [user], data: { n: 2 } });
      assert.deepEqual(await p.next(), { n: 1 });
      assert.deepEqual(await p.next(), { n: 2 });
      await p.roundTrip();
      assert.deepEqual(await s.events.next('push'), { n: 1 });
      assert.deepEqual(await s.events.next('push'), { n: 2 });
      assert.deepEqual(s.events.unconsumed({ events: ['push'] }), [], 'once each');
    });
    p.ws.close();
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
    // Behind nginx the 1009 close frame may be lost: nginx resets the
    // client while the rest of its 2 MB is still unread (1006). Either way
    // the connection is cut and, below, the node still serves.
    const code = await c.closed();
    if (server.nginx) assert.ok([1009, 1006].includes(code), `closed with ${code}`);
    else assert.equal(code, 1009);
    const other = await signedIn('/ws', a);
    await other.roundTrip();
    other.ws.close();
  });
});
