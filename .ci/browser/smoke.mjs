// End-to-end check of the browser tooling that .ci/browser.sh installs:
// a tiny HTTP server on 127.0.0.1 (random port) serves a page with a form, a
// button and Japanese text, under Kairo's strict Content-Security-Policy;
// Debian's Chromium, driven by playwright-core, clicks the button, checks that
// the DOM changed, takes a PNG screenshot and runs axe-core on the page. Prints
// one JSON line on stdout; exits non-zero on any failure, any page or console
// error (a CSP violation is one) or any serious/critical axe violation.
//
// Usage (after `eval "$(bash .ci/browser.sh)"`):
//   NODE_PATH="$KAIRO_TEST_BROWSER_NODE_PATH" node .ci/browser/smoke.mjs [OUT_DIR]
// OUT_DIR (default: a new temporary directory) receives smoke.png.
// Environment: KAIRO_TEST_CHROMIUM (default /usr/bin/chromium).
//
// Modules are loaded with createRequire, which honours NODE_PATH (an ESM
// `import 'playwright-core'` would not: it only looks in node_modules
// directories above the script). The same file also runs unchanged from a
// directory that has a node_modules symlink into the install.

import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const axePath = require.resolve('axe-core/axe.min.js');

// The flags known to work here as root (.ci/browser/README.md). Playwright
// itself adds --headless (with headless: true), --no-sandbox (chromiumSandbox
// defaults to false) and a fresh --user-data-dir in a temporary directory that
// it deletes on close (it refuses --user-data-dir in args).
const CHROMIUM_ARGS = [
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// The page is served the way Kairo serves its UI: with Kairo's strict
// Content-Security-Policy (crates/kairo-server/src/ui/mod.rs), so no inline
// script or style; the script and the stylesheet are files of their own.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; " +
  "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const FILES = {
  '/': ['text/html; charset=utf-8', `<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>Kairo ブラウザ確認</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<main>
  <h1>モデル監視ダッシュボード（Kairo）</h1>
  <p>日本語の表示確認：漢字・ひらがな・カタカナ。English text as well.</p>
  <form id="f" action="/" method="get">
    <label for="model">モデル名 (model name)</label>
    <input id="model" name="model" type="text" value="fraud-detector">
    <button id="go" type="submit">承認する (Approve)</button>
  </form>
  <p id="status" role="status">未承認</p>
</main>
</body>
</html>
`],
  '/app.css': ['text/css; charset=utf-8', `body { font-family: sans-serif; margin: 2rem; color: #1a1a1a; background: #fff; }
h1 { font-size: 1.6rem; }
label { display: block; margin: 0.5rem 0; }
button { font-size: 1rem; padding: 0.4rem 1rem; }
#status { margin-top: 1rem; font-weight: bold; }
`],
  '/app.js': ['text/javascript; charset=utf-8', `document.getElementById('f').addEventListener('submit', (e) => {
  e.preventDefault();
  document.getElementById('status').textContent = '承認済み: ' + document.getElementById('model').value;
});
`],
};

const timings = {};
const t0 = performance.now();
const lap = (name, since) => { timings[name] = Math.round(performance.now() - since); };

const outDir = resolve(process.argv[2] || mkdtempSync(join(tmpdir(), 'kairo-browser-smoke.')));
mkdirSync(outDir, { recursive: true });
const executablePath = process.env.KAIRO_TEST_CHROMIUM || '/usr/bin/chromium';

const server = createServer((req, res) => {
  const file = FILES[new URL(req.url, 'http://x').pathname];
  if (req.method === 'GET' && file) {
    res.writeHead(200, { 'content-type': file[0], 'content-security-policy': CSP, 'x-content-type-options': 'nosniff' });
    res.end(file[1]);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  }
});
await new Promise((ok, fail) => { server.once('error', fail); server.listen(0, '127.0.0.1', ok); });
const baseUrl = `http://127.0.0.1:${server.address().port}/`;

let browser;
let exitCode = 0;
try {
  let t = performance.now();
  browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
  lap('launch_ms', t);
  const version = browser.version();

  t = performance.now();
  const context = await browser.newContext({ viewport: { width: 900, height: 500 }, locale: 'ja-JP' });
  const page = await context.newPage();
  // Uncaught exceptions and console errors (a CSP violation is one) fail the run.
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // (Chromium asks for /favicon.ico by itself; its 404 is not the page's fault.)
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico')) {
      pageErrors.push(`console: ${m.text()} (${m.location().url})`);
    }
  });
  const resp = await page.goto(baseUrl, { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) throw new Error(`GET ${baseUrl}: status ${resp && resp.status()}`);
  lap('goto_ms', t);

  t = performance.now();
  const before = await page.textContent('#status');
  if (before !== '未承認') throw new Error(`unexpected status before click: ${JSON.stringify(before)}`);
  await page.fill('#model', 'churn-model');
  await page.click('#go');
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('承認済み'));
  const after = await page.textContent('#status');
  if (after !== '承認済み: churn-model') throw new Error(`unexpected status after click: ${JSON.stringify(after)}`);
  lap('click_ms', t);

  t = performance.now();
  const screenshot = join(outDir, 'smoke.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  const png = readFileSync(screenshot);
  if (png.length < 1000 || png.subarray(1, 4).toString() !== 'PNG') throw new Error(`bad screenshot ${screenshot}`);
  lap('screenshot_ms', t);

  t = performance.now();
  // page.addScriptTag({ path }) adds an inline <script>, which Kairo's CSP
  // blocks (unless the context has bypassCSP: true); evaluating the source over
  // the DevTools protocol is not subject to the page's CSP.
  await page.evaluate(readFileSync(axePath, 'utf8'));
  const axe = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
  lap('axe_ms', t);
  const serious = axe.filter((v) => v.impact === 'serious' || v.impact === 'critical');

  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('; ')}`);
  await context.close();
  lap('total_ms', t0);

  const result = {
    ok: serious.length === 0,
    chromium: version,
    url: baseUrl,
    dom_changed: { before, after },
    screenshot,
    screenshot_bytes: statSync(screenshot).size,
    axe_violations: axe.length,
    axe_serious_or_critical: serious.length,
    axe_details: axe,
    timings,
  };
  console.log(JSON.stringify(result));
  if (serious.length) {
    console.error(`smoke: ${serious.length} serious/critical axe violation(s)`);
    exitCode = 1;
  }
} catch (e) {
  console.error(`smoke: FAILED: ${e && e.stack || e}`);
  exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
process.exit(exitCode);
