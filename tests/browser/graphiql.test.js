'use strict';
// GraphiQL at /graphql, from vendored files, with the default limits.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

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

test('GraphiQL loads the schema and runs a query', async () => {
  const { context, page, errors } = await openPage(browser);
  const introspection = page.waitForResponse(
    (r) => r.url().endsWith('/graphql') && r.request().method() === 'POST'
      && (r.request().postData() ?? '').includes('__schema'),
  );
  await page.goto(`${server.url}/graphql`);
  await page.locator('.graphiql-container').waitFor();
  const schema = await (await introspection).json();
  assert.equal(schema.errors, undefined, JSON.stringify(schema.errors));
  assert.equal(schema.data.__schema.queryType.name, 'QueryRoot');

  // The docs explorer lists the schema's root types.
  await page.locator('.docExplorerShow').click();
  await page.locator('.doc-explorer-contents', { hasText: 'QueryRoot' }).waitFor();

  await page.evaluate(() => {
    document.querySelector('.query-editor .CodeMirror').CodeMirror.setValue('{ __typename }');
  });
  await page.locator('.execute-button').click();
  await page.locator('.result-window', { hasText: '"__typename": "QueryRoot"' }).waitFor();
  await screenshot(page, 'graphiql');

  assert.deepEqual(errors, []);
  await context.close();
});
