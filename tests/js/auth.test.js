'use strict';
// Authentication with every client version over every transport: a wrong
// secret, a malformed payload, and credentials carried by the handshake
// (the `auth` option of 3.x/4.x, and cookies, all 2.x can send).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const {
  VERSIONS,
  TRANSPORTS,
  QUIET_MS,
  startServer,
  signUp,
  follow,
  credentials,
  connect,
  emitWithAck,
  withSockets,
  cookieHeader,
} = require('./helpers');

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  if (server) await server.stop();
});

/** A well-formed secret that is not the user's (same alphabet and length). */
function wrongSecret(user) {
  let secret;
  do {
    secret = crypto.randomBytes(32).toString('base64url');
  } while (secret === user.secretkey);
  return secret;
}

/** B follows A; asserts A's socket `sa` (authenticated) gets the push. */
async function followReaches(sa, a, b) {
  const result = await follow(server, b, a);
  assert.equal(result.following, true);
  const followed = await sa.events.next('Followed');
  assert.equal(followed.followerId, b.id);
  assert.equal(followed.followerUsername, b.username);
  assert.equal(followed.following, true);
  assert.equal(typeof followed.timestamp, 'number');
}

for (const version of VERSIONS) {
  describe(`socket.io-client ${version}.x`, () => {
    for (const [name, transports] of Object.entries(TRANSPORTS)) {
      describe(`over ${name} (${transports.join('→')})`, () => {
        it('a wrong secret gets auth false, and the socket gets no push', async () => {
          const a = await signUp(server, 'a');
          const b = await signUp(server, 'b');
          await withSockets(async (track) => {
            const wrong = track(await connect(version, server, { transports }));
            const ack = await emitWithAck(wrong, 'initialConnection', {
              id: a.id,
              secretkey: wrongSecret(a),
            });
            assert.deepEqual(ack, [false], 'the ack callback gets false');
            assert.equal(await wrong.events.next('auth'), false, '`auth` event is false');
            const refused = wrong.events.mark();

            // A rightly authenticated socket of A proves the push was sent...
            const right = track(await connect(version, server, { transports }));
            assert.deepEqual(await emitWithAck(right, 'initialConnection', credentials(a)), [true]);
            assert.equal(await right.events.next('auth'), true);
            await followReaches(right, a, b);

            // ...and the refused one got nothing at all.
            const stray = await wrong.events.quiet(QUIET_MS, { since: refused });
            assert.deepEqual(stray, [], 'the refused socket received nothing after `auth` false');
            assert.ok(wrong.socket.connected, 'a failed attempt leaves the socket connected');
          });
        });

        it('a malformed payload gets auth false and an error event', async () => {
          const a = await signUp(server, 'a');
          await withSockets(async (track) => {
            const s = track(await connect(version, server, { transports }));
            const ack = await emitWithAck(s, 'initialConnection', { id: a.id });
            assert.deepEqual(ack, [false]);
            assert.equal(await s.events.next('auth'), false);
            const error = await s.events.next('error');
            assert.equal(typeof error, 'object');
            assert.equal(typeof error.error, 'string');
            assert.ok(error.error.length > 0, 'the error says what was wrong');

            // The socket is still usable: the right credentials now work.
            assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(a)), [true]);
            assert.equal(await s.events.next('auth'), true);
          });
        });

        if (version >= 3) {
          it('the handshake `auth` option authenticates without initialConnection', async () => {
            const a = await signUp(server, 'a');
            const b = await signUp(server, 'b');
            await withSockets(async (track) => {
              const s = track(await connect(version, server, { transports, auth: credentials(a) }));
              assert.equal(await s.events.next('auth'), true);
              await followReaches(s, a, b);
            });
          });

          it('a wrong secret in the handshake `auth` option gets auth false', async () => {
            const a = await signUp(server, 'a');
            await withSockets(async (track) => {
              const s = track(
                await connect(version, server, {
                  transports,
                  auth: { id: a.id, secretkey: wrongSecret(a) },
                }),
              );
              assert.equal(await s.events.next('auth'), false);
              // initialConnection still works on the same socket.
              assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(a)), [true]);
              assert.equal(await s.events.next('auth'), true);
            });
          });
        }

        it('handshake cookies (extraHeaders) authenticate without initialConnection', async () => {
          const a = await signUp(server, 'a');
          const b = await signUp(server, 'b');
          await withSockets(async (track) => {
            const s = track(
              await connect(version, server, { transports, headers: { Cookie: cookieHeader(a) } }),
            );
            assert.equal(await s.events.next('auth'), true);
            await followReaches(s, a, b);
          });
        });

        it('handshake cookies are ignored when the Origin is not allowed', async () => {
          const a = await signUp(server, 'a');
          await withSockets(async (track) => {
            // Had the (wrong) cookies counted, the first `auth` would be false.
            const s = track(
              await connect(version, server, {
                transports,
                headers: {
                  Cookie: cookieHeader({ id: a.id, secretkey: wrongSecret(a) }),
                  Origin: 'https://evil.example',
                },
              }),
            );
            assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(a)), [true]);
            assert.equal(await s.events.next('auth'), true, 'the first `auth` answers initialConnection');
            assert.deepEqual(s.events.unconsumed({ events: ['auth'] }), [], 'no other `auth` event');
          });
        });
      });
    }
  });
}
