'use strict';
// The operator view at /admin in a real browser, next to two users of the
// web app.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { startServer, httpRequest } = require('../js/helpers.js');
const { launchBrowser, openPage, screenshot } = require('./browser.js');

const API_KEY = `operator-${crypto.randomBytes(12).toString('hex')}`;
let server;
let browser;

before(async () => {
  // An allow-list, so a foreign origin's Socket.IO request is refused (and
  // counted); the pages here are the gateway's own origin, always let in.
  server = await startServer({ env: { TIDINGS_API_KEY: API_KEY, TIDINGS_ALLOWED_ORIGINS: 'https://app.example' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function signUp(page, username) {
  await page.fill('#sign-up-username', username);
  await page.click('#sign-up-form button[type=submit]');
  await page.locator('#connection[data-state=online]').waitFor();
}

test('the operator view refuses a wrong key, then shows two connections and the pushes they caused', async () => {
  const operator = await openPage(browser, `${server.url}/admin`);
  await operator.page.fill('#key', 'not-the-key-0123456789');
  await operator.page.click('#key-form button');
  await operator.page.locator('#key-error', { hasText: 'wrong API key' }).waitFor();
  assert.equal(await operator.page.locator('#signed-in').isHidden(), true);

  const suffix = crypto.randomBytes(3).toString('hex');
  const alice = await openPage(browser, server.url);
  const bob = await openPage(browser, server.url);
  await signUp(alice.page, `alice_${suffix}`);
  await signUp(bob.page, `bob_${suffix}`);
  await alice.page.fill('#search', `bob_${suffix}`);
  await alice.page.click('#search-form button');
  await alice.page.locator('#search-results button.follow').click();
  await bob.page.locator('#followers li', { hasText: `alice_${suffix}` }).waitFor();

  await operator.page.fill('#key', API_KEY);
  await operator.page.click('#key-form button');
  const thisNode = operator.page.locator('#cluster tbody tr', { hasText: '(this)' });
  // Columns: node, polling, websocket, authenticated, online users, ...
  await operator.page.waitForFunction(() => {
    const row = [...document.querySelectorAll('#cluster tbody tr')].find((r) => r.textContent.includes('(this)'));
    const cells = row ? [...row.cells].map((c) => c.textContent) : [];
    return cells.length > 4 && Number(cells[1]) + Number(cells[2]) === 2 && cells[3] === '2' && cells[4] === '2';
  });
  await operator.page.locator('#push-kinds li[data-kind=Followed]', { hasText: 'Followed: 1' }).waitFor();
  assert.match(await thisNode.textContent(), /ok/);

  // A Socket.IO request from a foreign origin is refused and counted; the
  // follow's push to bob went through the durable log. Both show, on the
  // node's row and the cluster's.
  const foreign = await httpRequest(`${server.url}/socket.io/?EIO=4&transport=polling`, {
    headers: { origin: 'https://evil.example' },
  });
  assert.equal(foreign.status, 403, foreign.text);
  for (const row of ['(this)', 'cluster']) {
    await operator.page.waitForFunction((which) => {
      const tr = [...document.querySelectorAll('#cluster tbody tr')].find((r) => r.cells[0].textContent.includes(which));
      const col = (name) => tr?.querySelector(`td[data-col=${name}]`)?.textContent ?? '';
      const [logged, notLogged] = col('log').split(' / ').map(Number);
      return Number(col('origin-refused')) >= 1 && logged >= 1 && notLogged === 0;
    }, row);
  }
  const headers = await operator.page.locator('#cluster thead').textContent();
  assert.match(headers, /origin refused/);
  assert.match(headers, /durable log/);
  await screenshot(operator.page, 'admin');
  await screenshot(operator.page, 'admin');

  // The page's own origin, with the key, is let in (the next test is the
  // other side).
  const sameOrigin = await operator.page.evaluate(async (key) => {
    const response = await fetch('/admin/api/stats', { headers: { authorization: `Bearer ${key}` } });
    return response.status;
  }, API_KEY);
  assert.equal(sameOrigin, 200);

  assert.deepEqual([...operator.errors.filter((e) => !e.includes('401')), ...alice.errors, ...bob.errors], []);
  for (const { context } of [operator, alice, bob]) await context.close();
});

test('the operator view is refused to another origin even with the key', async () => {
  // A page on another origin (about:blank's opaque origin stands in for
  // one) that somehow knows the key still gets no data: the browser's CORS
  // preflight fails, and were it skipped the server answers 403
  // (tests/api/admin.rs).
  const { context, page } = await openPage(browser);
  const answer = await page.evaluate(async ({ url, key }) => {
    try {
      const response = await fetch(`${url}/admin/api/stats`, { headers: { authorization: `Bearer ${key}` } });
      return { status: response.status };
    } catch (err) {
      return { blocked: String(err) };
    }
  }, { url: server.url, key: API_KEY });
  assert.ok(answer.blocked || answer.status === 403, JSON.stringify(answer));
  await context.close();
});
