'use strict';
// A real headless Chromium (Debian's, at /usr/bin/chromium: playwright's
// own browser downloads are not available here) driven by playwright-core,
// and the artifacts directory screenshots go to.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.TIDINGS_CHROMIUM || '/usr/bin/chromium';

/** Screenshots of every run, kept for people to look at. */
const ARTIFACTS = path.join(os.tmpdir(), 'tidings-browser-artifacts');

/** Waits in the page: generous, the machine is shared and Chromium is slow to start. */
const UI_TIMEOUT_MS = 15000;

async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (scripts/test does)`);
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // launch() gives each browser a fresh temporary user-data-dir.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A new context (its own storage: one user) and page, with errors collected; opens `url` if given. */
async function openPage(browser, url) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  if (url) await page.goto(url);
  return { context, page, errors };
}

async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

module.exports = { launchBrowser, openPage, screenshot, ARTIFACTS, UI_TIMEOUT_MS };
