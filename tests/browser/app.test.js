'use strict';
// The web app at / in a real browser: two people, each in their own browser
// context, as a newcomer would use it.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { startServer } = require('../js/helpers.js');
const { launchBrowser, openPage, screenshot } = require('./browser.js');

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const unique = (name) => `${name}_${crypto.randomBytes(3).toString('hex')}`;

async function signUp(page, username) {
  await page.fill('#sign-up-username', username);
  await page.click('#sign-up-form button[type=submit]');
  await page.locator('#whoami').filter({ hasText: username }).waitFor();
  await page.locator('#sign-up-form').waitFor({ state: 'hidden' });
  await page.locator('#connection[data-state=online]').waitFor();
}

async function follow(page, username) {
  await page.fill('#search', username);
  await page.click('#search-form button');
  const result = page.locator('#search-results li', { hasText: username });
  await result.locator('button.follow', { hasText: 'Follow' }).click();
  await page.locator('#following li', { hasText: username }).waitFor();
}

/** Cuts the page's connection and keeps it cut until `restore()`. */
async function cutConnection(context, page) {
  await context.route('**/socket.io/**', (route) => route.abort());
  await page.evaluate(() => window.tidings.client.socket.io.engine.close());
  await page.locator('#connection[data-state=offline]').waitFor();
  return () => context.unroute('**/socket.io/**');
}

test('two people sign up, follow each other, chat, and see typing and presence live', async () => {
  const aliceName = unique('alice');
  const bobName = unique('bob');
  const alice = await openPage(browser, server.url);
  const bob = await openPage(browser, server.url);

  await signUp(alice.page, aliceName);
  await signUp(bob.page, bobName);

  await follow(alice.page, bobName);
  await bob.page.locator('#notices li', { hasText: `${aliceName} followed you` }).waitFor();
  await bob.page.locator('#followers li', { hasText: aliceName }).waitFor();
  await follow(bob.page, aliceName);
  const bobAtAlice = alice.page.locator('#following li', { hasText: bobName });
  await bobAtAlice.locator('.dot.online').waitFor();

  // Alice opens the direct chat; it appears in Bob's list by itself.
  await bobAtAlice.locator('button.chat').click();
  await alice.page.locator('#message-form:not([hidden])').waitFor();
  const chatAtBob = bob.page.locator('#chats li', { hasText: aliceName });
  await chatAtBob.locator('button').click();
  await bob.page.locator('#chat-title', { hasText: aliceName }).waitFor();

  await alice.page.type('#message-input', 'hel');
  await bob.page.locator('#typing', { hasText: `${aliceName} is typing` }).waitFor();
  await alice.page.type('#message-input', 'lo Bob');
  await alice.page.press('#message-input', 'Enter');
  await bob.page.locator('#messages li', { hasText: 'hello Bob' }).waitFor();
  await bob.page.fill('#message-input', 'hi Alice');
  await bob.page.press('#message-input', 'Enter');
  await alice.page.locator('#messages li', { hasText: 'hi Alice' }).waitFor();
  await bob.page.locator('#typing:empty').waitFor();
  await screenshot(alice.page, 'app-chat-alice');
  await screenshot(bob.page, 'app-chat-bob');

  // Presence: Bob's tab closes, Alice sees him go offline; he comes back.
  await bob.page.close();
  await bobAtAlice.locator('.dot:not(.online)').waitFor();
  const bobAgain = await bob.context.newPage();
  await bobAgain.goto(server.url);
  await bobAgain.locator('#connection[data-state=online]').waitFor();
  await bobAtAlice.locator('.dot.online').waitFor();

  assert.deepEqual([...alice.errors, ...bob.errors], []);
  await alice.context.close();
  await bob.context.close();
});

test('messages that arrived while a tab was offline appear after it reconnects, marked', async () => {
  const alice = await openPage(browser, server.url);
  const bob = await openPage(browser, server.url);
  const aliceName = unique('alice');
  const bobName = unique('bob');
  await signUp(alice.page, aliceName);
  await signUp(bob.page, bobName);
  await follow(alice.page, bobName);
  await alice.page.locator('#following li', { hasText: bobName }).locator('button.chat').click();
  await alice.page.locator('#message-form:not([hidden])').waitFor();
  await bob.page.locator('#chats li', { hasText: aliceName }).locator('button').click();
  await alice.page.fill('#message-input', 'before the cut');
  await alice.page.press('#message-input', 'Enter');
  await bob.page.locator('#messages li', { hasText: 'before the cut' }).waitFor();

  const restore = await cutConnection(bob.context, bob.page);
  await alice.page.fill('#message-input', 'sent while Bob was away');
  await alice.page.press('#message-input', 'Enter');
  await alice.page.locator('#messages li', { hasText: 'sent while Bob was away' }).waitFor();
  await restore();

  const missed = bob.page.locator('#messages li.missed', { hasText: 'sent while Bob was away' });
  await missed.waitFor({ timeout: 30000 });
  assert.match(await missed.textContent(), /arrived while you were offline/);
  const earlier = bob.page.locator('#messages li', { hasText: 'before the cut' });
  assert.equal(await earlier.count(), 1, 'nothing shown twice');
  assert.equal(await earlier.getAttribute('class'), '', 'what came live is not marked');
  await screenshot(bob.page, 'app-missed-while-offline');

  await alice.context.close();
  await bob.context.close();
});

test('markup in messages and chat names is shown as text, never run', async () => {
  const alice = await openPage(browser, server.url);
  const bob = await openPage(browser, server.url);
  const aliceName = unique('alice');
  const bobName = unique('bob');
  await signUp(alice.page, aliceName);
  await signUp(bob.page, bobName);
  await follow(alice.page, bobName);

  // Chat names are kept as written by the server: the app must escape them.
  const groupName = '<img src=x onerror="window.pwned=1"><b>bold</b>';
  await alice.page.fill('#group-name', groupName);
  await alice.page.click('#group-form button');
  await alice.page.locator('#message-form:not([hidden])').waitFor();
  const title = bob.page.locator('#chats li .name');
  await title.filter({ hasText: '<img' }).waitFor();
  assert.equal(await title.textContent(), `# ${groupName}`);
  await bob.page.locator('#chats li button').click();
  assert.equal(await bob.page.locator('#chat-title').textContent(), groupName);

  // Message text arrives cleaned of tags but with < > & " as characters.
  await alice.page.fill('#message-input', '<i>x</i> 5 < 6 > 4 & "quoted" <script>window.pwned=2</script>');
  await alice.page.press('#message-input', 'Enter');
  const message = bob.page.locator('#messages li .content');
  await message.waitFor();
  assert.equal(await message.textContent(), 'x 5 < 6 > 4 & "quoted"');

  for (const { page } of [alice, bob]) {
    assert.equal(await page.locator('#chats img, #chat img, #chat b, #chat i, #chats b').count(), 0);
    assert.equal(await page.evaluate(() => window.pwned), undefined);
  }
  await alice.context.close();
  await bob.context.close();
});
