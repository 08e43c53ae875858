// What both real-browser walks share: Debian's Chromium through playwright-core, the result
// they print (pages, axe-core's serious/critical violations, console errors, checks), a check
// that throws, and a visit that screenshots a page and runs axe-core on it.
//
// Resolved through NODE_PATH ($KAIRO_TEST_BROWSER_NODE_PATH, set by .ci/browser.sh).

import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/// The result to print, and `check(ok, what)`, which records and throws on failure.
export function report() {
  const result = { pages: [], violations: [], consoleErrors: [], checks: [] };
  const check = (ok, what) => {
    result.checks.push({ ok, what });
    if (!ok) throw new Error(`check failed: ${what}`);
  };
  return { result, check };
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.KAIRO_TEST_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
}

/// `visit(page, name)`: a full-page screenshot into `out` and axe-core's findings in `result`.
export function visitor(result, out) {
  mkdirSync(out, { recursive: true });
  return async (page, name) => {
    await page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
    await page.evaluate(axeSource);
    const axe = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
    });
    for (const v of axe) if (v.impact === 'serious' || v.impact === 'critical') result.violations.push({ page: name, ...v });
    result.pages.push({ name, url: page.url(), title: await page.title() });
  };
}

/// Print the result as one JSON line and exit 1 on any failure.
export function finish(result) {
  console.log(JSON.stringify(result));
  process.exit(result.error || result.consoleErrors.length || result.violations.length ? 1 : 0);
}
