'use strict';
// The seed flow, end to end, with every client version over every
// transport: sign up A and B, A's socket authenticates with
// `initialConnection`, B follows A over GraphQL, A's socket gets `Followed`.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  VERSIONS,
  TRANSPORTS,
  startServer,
  signUp,
  follow,
  credentials,
  connect,
  transportName,
  upgraded,
  emitWithAck,
  withSockets,
} = require('./helpers');

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  if (server) await server.stop();
});

for (const version of VERSIONS) {
  describe(`socket.io-client ${version}.x`, () => {
    for (const [name, transports] of Object.entries(TRANSPORTS)) {
      it(`seed flow over ${name} (${transports.join('→')})`, async () => {
        const a = await signUp(server, 'a');
        const b = await signUp(server, 'b');
        await withSockets(async (track) => {
          const sa = track(await connect(version, server, { transports }));
          if (transports.length === 1) assert.equal(transportName(sa), transports[0]);

          const ack = await emitWithAck(sa, 'initialConnection', credentials(a));
          assert.deepEqual(ack, [true], 'the ack callback gets true');
          assert.equal(await sa.events.next('auth'), true, '`auth` event is true');
          const authenticated = sa.events.mark();

          if (name === 'upgrade') {
            // The push below must travel over the upgraded transport.
            await upgraded(sa);
            assert.equal(transportName(sa), 'websocket');
          }

          const before = Date.now();
          const result = await follow(server, b, a);
          assert.equal(result.following, true);
          assert.deepEqual(result.user, { id: a.id, username: a.username });

          const followed = await sa.events.next('Followed');
          assert.equal(followed.followerId, b.id);
          assert.equal(followed.followerUsername, b.username);
          assert.equal(followed.following, true);
          assert.equal(typeof followed.timestamp, 'number');
          assert.ok(Number.isInteger(followed.timestamp), `integer timestamp: ${followed.timestamp}`);
          assert.ok(
            followed.timestamp >= before - 1000 && followed.timestamp <= Date.now() + 1000,
            `timestamp ${followed.timestamp} is milliseconds of now (${before})`,
          );
          assert.deepEqual(
            Object.keys(followed).sort(),
            ['followerId', 'followerUsername', 'following', 'timestamp'],
          );
          assert.ok(sa.socket.connected, 'socket still connected');
          assert.deepEqual(sa.events.unconsumed({ since: authenticated }), [], 'no other events arrived');
        });
      });
    }
  });
}
