'use strict';
// An unchanged web page (fixtures/seed-page.html, written like the social
// app's client: cookies set by the page, socket.io-client 4.x with its
// default transports, `initialConnection` emitted once on load and never
// again) loses its network for 10 s while 5 pushes go to its user. When the
// network is back it is signed in again without any client code and shows
// all 5, once each, in order (docs/protocol.md, "Delivery guarantees").
//
// The cut is real: the page reaches the server through a TCP proxy of the
// test's own, which drops every connection and refuses new ones while cut
// (Playwright's offline mode would leave an open WebSocket alone).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { startServer, signUp, httpRequest, freePort } = require('../js/helpers.js');
const { launchBrowser, openPage, screenshot } = require('./browser.js');

const API_KEY = 'seed-page-test-api-key-0123456789';
const CUT_MS = 10_000;
const PAGE = fs.readFileSync(path.join(__dirname, 'fixtures', 'seed-page.html'));
// socket.io-client 4.x's browser bundle, as the web app vendors it.
const CLIENT_BUNDLE = fs.readFileSync(path.join(__dirname, '..', '..', 'web', 'vendor', 'socket.io.min.js'));

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** A TCP proxy on localhost:<port> to `target`, whose network can be cut. */
async function startProxy(target) {
  const port = await freePort();
  const open = new Set();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, '127.0.0.1');
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ]) {
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
      open.add(a);
      a.on('close', () => open.delete(a));
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://localhost:${port}`,
    cut() {
      cut = true;
      for (const socket of open) socket.destroy();
    },
    restore() {
      cut = false;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Serves the page and the client bundle on another origin of the same site. */
async function startPageServer() {
  const port = await freePort();
  const server = http.createServer((req, res) => {
    const file = req.url.startsWith('/socket.io.min.js') ? CLIENT_BUNDLE : PAGE;
    const type = req.url.startsWith('/socket.io.min.js') ? 'text/javascript' : 'text/html';
    res.writeHead(200, { 'content-type': type });
    res.end(file);
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    origin: `http://localhost:${port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

async function pushTo(server, user, ns) {
  for (const n of ns) {
    const res = await httpRequest(`${server.url}/api/push`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}` },
      body: { users: [user.id], event: 'push', data: { n } },
    });
    assert.equal(res.status, 202, res.text);
  }
}

const items = (page, list) => page.locator(`#${list} li`).allTextContents();

/** Opens the page, cuts its network for CUT_MS while pushes 2..6 are sent, and checks what it shows. */
async function cutAndComeBack({ server, proxy, pageUrl, name }) {
  const user = await signUp(server, name);
  const url = new URL(pageUrl);
  url.searchParams.set('id', user.id);
  url.searchParams.set('secretkey', user.secretkey);
  const { context, page, errors } = await openPage(browser, url.toString());
  try {
    // `auth` may come more than once at first (the page's initialConnection,
    // and cookies on the handshake or the upgrade): what counts is that it
    // comes again, true, after the cut.
    await page.locator('#auth li').first().waitFor();
    await pushTo(server, user, [1]);
    await page.locator('#pushes li', { hasText: '1' }).waitFor();
    // The page's socket has upgraded to WebSocket (the cookies came with it).
    // eslint-disable-next-line no-undef -- the page's own global `socket`
    await page.waitForFunction(() => typeof socket !== 'undefined' && socket.io.engine.transport.name === 'websocket');

    // A push sent in the last second before a connection dies is in doubt
    // and comes again (docs/protocol.md 9.3): let push 1 settle first.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const authBefore = (await items(page, 'auth')).length;
    proxy.cut();
    await pushTo(server, user, [2, 3, 4, 5, 6]);
    await new Promise((resolve) => setTimeout(resolve, CUT_MS));
    proxy.restore();

    await page
      .locator(`#auth li:nth-child(${authBefore + 1})`, { hasText: 'true' })
      .waitFor({ timeout: 30_000 });
    await page.locator('#pushes li:nth-child(6)').waitFor();
    // A barrier: one more push, live, comes after everything replayed.
    await pushTo(server, user, [7]);
    await page.locator('#pushes li:nth-child(7)').waitFor();
    await screenshot(page, `seed-page-${name}`);
    assert.deepEqual(await items(page, 'pushes'), ['1', '2', '3', '4', '5', '6', '7'], 'once each, in order');
    const auth = await items(page, 'auth');
    assert.ok(auth.length > authBefore, 'signed in again without client code');
    assert.ok(auth.every((ok) => ok === 'true'), `never refused: ${auth}`);
    // The cut shows as failed requests in the console; nothing else may.
    assert.deepEqual(errors.filter((e) => !e.startsWith('Failed to load resource')), []);
  } finally {
    await context.close();
  }
}

test('a page on another origin of the same site comes back signed in and shows what was pushed while it was cut off', async () => {
  const pageServer = await startPageServer();
  const server = await startServer({
    env: { TIDINGS_API_KEY: API_KEY, TIDINGS_ALLOWED_ORIGINS: pageServer.origin },
  });
  const proxy = await startProxy(server.port);
  try {
    const pageUrl = new URL(`${pageServer.origin}/`);
    pageUrl.searchParams.set('server', proxy.url);
    await cutAndComeBack({ server, proxy, pageUrl: pageUrl.toString(), name: 'crossorigin' });
  } finally {
    await proxy.close();
    await server.stop();
    await pageServer.close();
  }
});

test('the same page served by the gateway itself (--static-dir) comes back the same way', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidings-static-'));
  fs.writeFileSync(path.join(dir, 'seed.html'), PAGE);
  fs.writeFileSync(path.join(dir, 'socket.io.min.js'), CLIENT_BUNDLE);
  const server = await startServer({ env: { TIDINGS_API_KEY: API_KEY, TIDINGS_STATIC_DIR: dir } });
  const proxy = await startProxy(server.port);
  try {
    await cutAndComeBack({ server, proxy, pageUrl: `${proxy.url}/seed.html`, name: 'staticdir' });
  } finally {
    await proxy.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
