'use strict';
// Origin check on the Socket.IO endpoint (docs/protocol.md §2.4, issue 16):
// with allowed origins configured, a page from another origin cannot open a
// socket by polling or by WebSocket; an allowed origin and clients that send
// no Origin (Node, apps) connect as before. Real socket.io clients, the
// header set the way a browser sets it.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { TRANSPORTS, startNode, signUp, credentials, connect, emitWithAck, withSockets } = require('./helpers');

const GOOD = 'https://good.example';
const EVIL = 'https://evil.example';

let server;
before(async () => {
  server = await startNode({ env: { TIDINGS_ALLOWED_ORIGINS: GOOD } });
});
after(async () => {
  if (server) await server.stop();
});

async function refusedMetric() {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('tidings_origin_refused_total '));
  return Number(line.split(' ')[1]);
}

describe('origin check', () => {
  for (const [version, transports] of [
    [4, TRANSPORTS.websocket],
    [4, TRANSPORTS.polling],
    [2, TRANSPORTS.polling],
  ]) {
    const over = `${version}.x over ${transports.join('→')}`;

    it(`a foreign origin cannot connect (${over})`, async () => {
      const before = await refusedMetric();
      await assert.rejects(connect(version, server, { transports, headers: { Origin: EVIL } }), /connect_error|timeout/);
      assert.ok((await refusedMetric()) > before, 'the refusal is counted');
    });

    it(`an allowed origin and no origin connect and authenticate (${over})`, async () => {
      const alice = await signUp(server, 'alice');
      await withSockets(async (track) => {
        for (const headers of [{ Origin: GOOD }, undefined]) {
          const s = track(await connect(version, server, { transports, headers }));
          assert.deepEqual(await emitWithAck(s, 'initialConnection', credentials(alice)), [true]);
        }
      });
    });
  }
});
