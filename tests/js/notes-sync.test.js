'use strict';
// Note sync (docs/protocol.md, "Note sync"; contract notes-sync.md) with the
// `ws` package and a client written from the contract that signs like the
// notes app's web client: HMAC-SHA256 with Web Crypto over
// JSON.stringify({ payload, timestamp, nonce }), keyed with the hex
// sessionSecret. Every row of the contract's table, every error text, the
// order of checks, two devices of one user (on different nodes through
// nginx when TIDINGS_JS_TOPOLOGY=cluster), and bad input.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const nodeCrypto = require('node:crypto');
const WebSocket = require('ws');

const { startServer, connect, withTimeout, httpRequest } = require('./helpers');

/** The next client address (a cluster hands them out round robin, so
 * successive connections reach different nodes); none on one node. */
const sourceAddress = (s) => (s.nextLocalAddress ? s.nextLocalAddress() : undefined);

const JWT_SECRET = 'a-notes-js-hs256-secret-of-32-bytes-or-more';
const AUTH_TIMEOUT_SECS = 2;
const MAX_CONNECTIONS = 3;
const MB = 1024 * 1024;

const TOO_LARGE = 'Message too large. Maximum size is 1MB.';
const RATE = 'Rate limit exceeded. Please slow down.';
const FORMAT = 'Invalid message format';
const SIG_FAILED = 'Message authentication failed';

let server;
before(async () => {
  server = await startServer({
    env: {
      TIDINGS_JWT_HS256_SECRET: JWT_SECRET,
      TIDINGS_NOTES_AUTH_TIMEOUT_SECS: String(AUTH_TIMEOUT_SECS),
      TIDINGS_NOTES_MAX_CONNECTIONS_PER_USER: String(MAX_CONNECTIONS),
    },
  });
});
after(async () => {
  if (server) await server.stop();
});

// ---------------------------------------------------------------------------
// Tokens and signing, as the app does them

const b64url = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An HS256 session token for `sub` (a Clerk-like `user_…`). */
function jwt(sub, ttlSecs = 600) {
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub, iat: now, exp: now + ttlSecs })}`;
  return `${body}.${nodeCrypto.createHmac('sha256', JWT_SECRET).update(body).digest('base64url')}`;
}

const newSub = () => `user_${nodeCrypto.randomUUID().replace(/-/g, '').slice(0, 12)}`;

function toBase64(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/** The envelope the web client sends (Web Crypto HMAC-SHA256). */
async function envelope(secret, payload, { timestamp = Date.now(), nonce } = {}) {
  nonce = nonce || toBase64(crypto.getRandomValues(new Uint8Array(16)));
  const message = JSON.stringify({ payload, timestamp, nonce });
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const signature = toBase64(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(message)));
  return JSON.stringify({ payload, signature, timestamp, nonce });
}

function expectedSecret(token, userId, at) {
  const window = Math.floor(at / 300000) * 300000;
  return nodeCrypto.createHash('sha256').update(`${token}:${userId}:${window}`).digest('hex');
}

// ---------------------------------------------------------------------------
// The client

/** A `/notes` connection whose frames queue until `next()` takes them. */
function open(path = '/notes', options = {}) {
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}${path}`, {
    localAddress: options.localAddress || sourceAddress(server),
    headers: options.headers || {},
  });
  const frames = [];
  const waiting = [];
  let closed = null;
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString());
    const waiter = waiting.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error('refused'), { status: res.statusCode, res })));
    ws.once('error', reject);
  });
  const closing = new Promise((resolve) => ws.on('close', (code) => resolve((closed = code))));
  const c = {
    ws,
    opened,
    secret: null,
    token: null,
    send: (value) => ws.send(typeof value === 'string' ? value : JSON.stringify(value)),
    async sendSigned(payload, opts) {
      c.send(await envelope(c.secret, payload, opts));
    },
    next: (ms = 5000) =>
      withTimeout(
        frames.length ? Promise.resolve(frames.shift()) : new Promise((resolve) => waiting.push(resolve)),
        ms,
        () => `no frame on ${path} (closed: ${closed})`,
      ),
    async expectError(message) {
      assert.deepEqual(await c.next(), { type: 'error', message });
    },
    async expectType(type) {
      const frame = await c.next();
      assert.equal(frame.type, type, JSON.stringify(frame));
      return frame;
    },
    closed: (ms = 5000) => withTimeout(closing, ms, `${path} not closed`),
    /** A barrier: the pong is the next frame, so nothing came before it. */
    async roundTrip() {
      c.send({ type: 'ping' });
      const frame = await c.next();
      assert.equal(frame.type, 'pong', `nothing before the pong: ${JSON.stringify(frame)}`);
    },
    async auth(token) {
      c.send({ type: 'auth', token });
      const answer = await c.next();
      if (answer.type === 'auth_success') {
        c.secret = answer.sessionSecret;
        c.token = token;
      }
      return answer;
    },
    close: () => ws.close(),
  };
  return c;
}

async function greeted(path, options) {
  const c = open(path, options);
  await c.opened;
  assert.deepEqual(await c.next(), { type: 'connection_established', message: 'Please authenticate to continue' });
  return c;
}

/** Connected and authenticated as `sub`, the way the app does it (twice). */
async function device(sub) {
  const c = await greeted();
  const token = jwt(sub);
  assert.equal((await c.auth(token)).type, 'auth_success');
  assert.equal((await c.auth(token)).type, 'auth_success');
  return c;
}

async function gql(sub, query, variables = {}) {
  const res = await httpRequest(`${server.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt(sub)}` },
    body: JSON.stringify({ query, variables }),
    localAddress: sourceAddress(server),
  });
  return JSON.parse(res.text);
}

async function createNote(sub) {
  const body = await gql(sub, 'mutation { createNote(title: "[ENCRYPTED]", encryptedTitle: "t0") { id } }');
  assert.equal(body.errors, undefined, JSON.stringify(body));
  return body.data.createNote.id;
}

async function noteOf(sub, id) {
  const body = await gql(
    sub,
    'query($id: ID!) { note(id: $id) { id title content encryptedTitle encryptedContent starred archived deleted hidden folderId updatedAt } }',
    { id },
  );
  return body.data.note;
}

// ---------------------------------------------------------------------------

describe('note sync: connection and authentication', () => {
  it('greets, authenticates with a derived sessionSecret, answers a repeated auth and ping', async () => {
    const sub = newSub();
    const c = await greeted();
    const token = jwt(sub);
    const before = Date.now();
    const answer = await c.auth(token);
    const after = Date.now();
    assert.ok(
      [expectedSecret(token, sub, before), expectedSecret(token, sub, after)].includes(answer.sessionSecret),
      JSON.stringify(answer),
    );
    assert.deepEqual(answer, {
      type: 'auth_success',
      message: 'Authentication successful',
      userId: sub,
      sessionSecret: answer.sessionSecret,
    });
    assert.equal((await c.auth(token)).type, 'auth_success');
    c.send({ type: 'ping' });
    const pong = await c.expectType('pong');
    assert.ok(pong.timestamp >= before);
    c.close();
  });

  it('refuses a bad or missing token and an expired one, then closes', async () => {
    for (const [token, message, reason] of [
      ['not.a.token', 'Authentication failed', 'auth-failed'],
      [undefined, 'Authentication failed', 'auth-failed'],
      [jwt(newSub(), -60), 'Token expired', 'token-expired'],
    ]) {
      const c = await greeted();
      c.send({ type: 'auth', token });
      assert.deepEqual(await c.next(), { type: 'auth_failed', message, reason });
      await c.closed();
    }
  });

  it('tells and closes a connection that does not authenticate in time', async () => {
    const c = await greeted();
    await c.expectError('Authentication timeout. Connection will be closed.');
    await c.closed();
  });

  it(`closes a user's connection beyond ${MAX_CONNECTIONS} with an error`, async () => {
    const sub = newSub();
    // On one node: the cap is per node.
    const localAddress = sourceAddress(server);
    const held = [];
    for (let i = 0; i < MAX_CONNECTIONS; i += 1) {
      const c = await greeted('/notes', { localAddress });
      assert.equal((await c.auth(jwt(sub))).type, 'auth_success');
      held.push(c);
    }
    const extra = await greeted('/notes', { localAddress });
    extra.send({ type: 'auth', token: jwt(sub) });
    await extra.expectError('Maximum connections exceeded for this user');
    await extra.closed();
    for (const c of held) c.close();
  });

  it('accepts any path under /notes and refuses nothing without an Origin', async () => {
    const c = await greeted('/notes/some/path');
    await c.roundTrip();
    c.close();
  });
});

describe('note sync: signed messages', () => {
  it('accepts signed and unsigned messages and refuses replays, stale, future and forged ones', async () => {
    const c = await device(newSub());
    await c.sendSigned({ type: 'ping' });
    await c.expectType('pong');
    c.send({ type: 'ping' });
    await c.expectType('pong');

    const replay = await envelope(c.secret, { type: 'ping' }, { nonce: 'cmVwbGF5LW5vbmNl' });
    c.send(replay);
    await c.expectType('pong');
    c.send(replay);
    await c.expectError(SIG_FAILED);

    await c.sendSigned({ type: 'ping' }, { timestamp: Date.now() - 5 * 60000 - 1000 });
    await c.expectError(SIG_FAILED);
    await c.sendSigned({ type: 'ping' }, { timestamp: Date.now() + 61000 });
    await c.expectError(SIG_FAILED);
    c.send(await envelope('0'.repeat(64), { type: 'ping' }));
    await c.expectError(SIG_FAILED);
    const tampered = JSON.parse(await envelope(c.secret, { type: 'ping' }));
    tampered.payload = { type: 'ping', extra: 1 };
    c.send(tampered);
    await c.expectError(SIG_FAILED);
    await c.roundTrip();
    c.close();
  });

  it('accepts a signed auth on a fresh connection (the client keeps signing after a reconnect)', async () => {
    const sub = newSub();
    const first = await device(sub);
    const oldSecret = first.secret;
    first.close();
    const fresh = await greeted();
    fresh.send(await envelope(oldSecret, { type: 'auth', token: jwt(sub) }));
    const answer = await fresh.next();
    assert.equal(answer.type, 'auth_success', JSON.stringify(answer));
    fresh.secret = answer.sessionSecret;
    await fresh.sendSigned({ type: 'ping' });
    await fresh.expectType('pong');
    // Before authentication, any other signed message has nothing to be
    // verified against.
    const other = await greeted();
    other.send(await envelope(oldSecret, { type: 'ping' }));
    await other.expectError(SIG_FAILED);
    other.close();
    fresh.close();
  });
});

describe('note sync: the message table', () => {
  it('syncs a note_update to the other devices of the user (and Socket.IO tabs), never to another user', async () => {
    const sub = newSub();
    const noteId = await createNote(sub);
    const laptop = await device(sub);
    const phone = await device(sub);
    const stranger = await device(newSub());
    const tab = await connect(4, server, { auth: { token: jwt(sub) } });
    assert.equal(await tab.events.next('auth'), true);

    await laptop.sendSigned({
      type: 'note_update',
      noteId,
      changes: { title: '[ENCRYPTED]', content: 'plain text', encryptedContent: 'c1', starred: true },
    });
    const success = await laptop.expectType('note_update_success');
    assert.equal(success.noteId, noteId);
    assert.equal(typeof success.timestamp, 'number');
    const sync = await phone.expectType('note_sync');
    assert.deepEqual(Object.keys(sync).sort(), ['changes', 'fromUserId', 'noteId', 'timestamp', 'type', 'updatedNote']);
    assert.deepEqual(sync.changes, {
      title: '[ENCRYPTED]',
      encryptedContent: 'c1',
      starred: true,
      updatedAt: sync.updatedNote.updatedAt,
    });
    assert.equal(sync.fromUserId, sub);
    assert.deepEqual(sync.updatedNote, success.updatedNote);
    const onSocket = await tab.events.next('note_sync');
    assert.deepEqual(onSocket.changes, sync.changes);
    await laptop.roundTrip();
    await stranger.roundTrip();
    const stored = await noteOf(sub, noteId);
    assert.equal(stored.content, null, 'plain text is never stored');
    assert.equal(stored.encryptedContent, 'c1');
    for (const c of [laptop, phone, stranger]) c.close();
    tab.close();
  });

  it('answers every other row of the table', async () => {
    const sub = newSub();
    const noteId = await createNote(sub);
    const a = await device(sub);
    const b = await device(sub);
    const unknownId = nodeCrypto.randomUUID();

    a.send({ type: 'what' });
    await a.expectError('Unknown message type');
    a.send({ type: 'join_note', noteId });
    assert.deepEqual(await a.next(), {
      type: 'note_joined',
      noteId,
      message: 'Successfully joined note for real-time sync',
    });
    a.send({ type: 'join_note' });
    await a.expectError('Missing noteId or userId');
    a.send({ type: 'join_note', noteId: unknownId });
    await a.expectError('Note not found or access denied');
    a.send({ type: 'leave_note', noteId });
    assert.deepEqual(await a.next(), { type: 'note_left', noteId });
    a.send({ type: 'leave_note' });
    a.send({ type: 'note_update', noteId });
    a.send({ type: 'note_update', noteId, changes: {} });
    await a.roundTrip();
    a.send({ type: 'note_update', noteId, changes: { title: 'plain' } });
    await a.expectError('No valid fields to update');

    const noteData = { id: 'n-new', userId: sub, title: '[ENCRYPTED]' };
    await a.sendSigned({ type: 'note_created', noteId: 'n-new', noteData });
    const created = await b.expectType('note_created_sync');
    assert.deepEqual(created.noteData, noteData);
    assert.equal(created.fromUserId, sub);
    a.send({ type: 'note_created', noteId: 'n-new' });
    await a.expectError('Missing noteId or noteData');
    a.send({ type: 'note_created', noteId: 'n-new', noteData: { userId: 'user_someone_else' } });
    await a.expectError('Access denied: Cannot broadcast resource created by another user');

    a.send({ type: 'note_deleted', noteId });
    assert.equal((await b.expectType('note_deleted_sync')).noteId, noteId);
    a.send({ type: 'note_deleted', noteId: unknownId });
    await a.expectError('Note not found or access denied');

    const folder = (await gql(sub, 'mutation { createFolder(name: "Work") { id } }')).data.createFolder.id;
    assert.equal((await a.expectType('folder_created_sync')).fromUserId, 'server');
    assert.equal((await b.expectType('folder_created_sync')).fromUserId, 'server');
    const folderData = { id: 'f-new', userId: sub, name: 'Ideas' };
    a.send({ type: 'folder_created', folderId: 'f-new', folderData });
    assert.deepEqual((await b.expectType('folder_created_sync')).folderData, folderData);
    a.send({ type: 'folder_created', folderId: 'f-new', folderData: { userId: 'user_x' } });
    await a.expectError('Access denied: Cannot broadcast resource created by another user');
    a.send({ type: 'folder_updated', folderId: folder, changes: { name: 'W' }, updatedFolder: { id: folder, name: 'W' } });
    const updated = await b.expectType('folder_updated_sync');
    assert.deepEqual([updated.folderId, updated.changes, updated.updatedFolder.name], [folder, { name: 'W' }, 'W']);
    a.send({ type: 'folder_updated', folderId: unknownId, changes: { name: 'x' } });
    await a.expectError('Folder not found or access denied');
    a.send({ type: 'folder_deleted', folderId: folder });
    assert.equal((await b.expectType('folder_deleted_sync')).folderId, folder);
    a.send({ type: 'folder_deleted', folderId: unknownId });
    await a.expectError('Folder not found or access denied');
    await a.roundTrip();
    await b.roundTrip();
    a.close();
    b.close();
  });

  it('before authentication refuses note_update and ignores the other note and folder messages', async () => {
    const c = await greeted();
    c.send({ type: 'note_update', noteId: 'x', changes: { starred: true } });
    await c.expectError('Authentication required');
    for (const type of ['join_note', 'leave_note', 'note_created', 'note_deleted', 'folder_created', 'folder_updated', 'folder_deleted']) {
      c.send({ type, noteId: 'x', folderId: 'y' });
    }
    await c.roundTrip();
    c.close();
  });
});

describe('note sync: order of checks and bad input', () => {
  it('refuses an oversize frame before the rate limit counts it, and counts pre-auth messages', async () => {
    const c = await greeted();
    const big = JSON.stringify({ type: 'ping', pad: 'x'.repeat(MB) });
    for (let i = 0; i < 3; i += 1) {
      c.send(big);
      await c.expectError(TOO_LARGE);
    }
    // 300 messages in 60 s, all before authentication.
    for (let i = 0; i < 300; i += 1) c.send({ type: 'ping' });
    for (let i = 0; i < 300; i += 1) await c.expectType('pong');
    c.send({ type: 'ping' });
    await c.expectError(RATE);
    c.send('not json');
    await c.expectError(RATE);
    c.send(big);
    await c.expectError(TOO_LARGE);
    c.close();
  });

  it('answers bad input with the right error, stores nothing and stays up', async () => {
    const sub = newSub();
    const other = newSub();
    const noteId = await createNote(sub);
    const othersNote = await createNote(other);
    const before = await noteOf(sub, noteId);
    const c = await device(sub);
    const update = (changes, id = noteId) => ({ type: 'note_update', noteId: id, changes });

    // Exactly 1 MiB + 1.
    const head = `{"type":"note_update","noteId":"${noteId}","pad":"`;
    const frame = head + 'x'.repeat(MB + 1 - head.length - 2) + '"}';
    assert.equal(Buffer.byteLength(frame), MB + 1);
    c.send(frame);
    await c.expectError(TOO_LARGE);
    c.send('['.repeat(10000) + ']'.repeat(10000));
    await c.expectError(FORMAT);
    c.send(`{"type":"note_update","noteId":"${noteId}","changes":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`);
    await c.expectError(FORMAT);
    c.send('{"type":"note_update","noteId":"' + noteId + '","changes":{"__proto__":{"starred":true},"constructor":{"prototype":{"x":1}}}}');
    await c.expectError('No valid fields to update');
    for (const wrong of [{ starred: 'true' }, { archived: 1 }, { hidden: null }, { encryptedTitle: 5 }, { content: ['[ENCRYPTED]'] }, { folderId: { $ne: null } }]) {
      c.send(update(wrong));
      await c.expectError(FORMAT);
    }
    for (const wrong of [[1], 'changes', 7, true]) {
      c.send(update(wrong));
      await c.expectError(FORMAT);
    }
    for (const id of [12, { $gt: '' }, ['a']]) {
      c.send(update({ starred: true }, id));
      await c.expectError(FORMAT);
    }
    c.send(update({ starred: true }, othersNote));
    await c.expectError('Note not found or access denied');
    for (const id of ["' OR '1'='1", '1; DROP TABLE notes; --', `${noteId}' --`]) {
      c.send(update({ starred: true }, id));
      await c.expectError('Note not found or access denied');
    }
    c.send(update({ folderId: nodeCrypto.randomUUID() }));
    await c.expectError('Folder not found or access denied');
    c.send('"just a string"');
    await c.expectError(FORMAT);
    c.send({ type: 42 });
    await c.expectError('Unknown message type');
    await c.roundTrip();

    assert.deepEqual(await noteOf(sub, noteId), before);
    assert.equal((await noteOf(other, othersNote)).starred, false);
    assert.equal(({}).starred, undefined, 'no prototype pollution here either');
    const health = await httpRequest(`${server.url}/healthz`, { localAddress: sourceAddress(server) });
    assert.equal(health.status, 200);
    c.close();
  });
});
