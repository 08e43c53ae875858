// Clicks through Kairo's web UI in Debian's Chromium (playwright-core), as a person would:
// the overview, the runs page through the navigation, a filter typed into the form and
// submitted, the next page, the switch to Japanese. Each page: a screenshot into OUT_DIR,
// axe-core's serious/critical violations counted, console errors (a CSP violation is one)
// collected. Prints one JSON line; exits 1 on any failure.
//
// Usage: NODE_PATH="$KAIRO_TEST_BROWSER_NODE_PATH" node ui.mjs BASE_URL OUT_DIR

import { finish, launch, report, visitor } from './harness.mjs';

const [base, out] = process.argv.slice(2);
const { result, check } = report();
const visitPage = visitor(result, out);

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => result.consoleErrors.push(String(e)));
  const visit = (name) => visitPage(page, name);

  await page.goto(`${base}/?lang=en`);
  check((await page.textContent('h1')) === 'Overview', 'the overview has its heading');
  await visit('overview');

  await page.getByRole('link', { name: 'Runs', exact: true }).click();
  await page.waitForURL(/\/runs/);
  check((await page.locator('tbody tr').count()) === 2, 'both runs are listed');
  await visit('runs');

  await page.getByLabel('Filter (MLflow search syntax)').fill("metrics.acc > 0.6 and params.lr = '0.9'");
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/filter=/);
  check((await page.locator('tbody tr').count()) === 1, 'the filter keeps one run');
  check((await page.locator('tbody').textContent()).includes('acc=0.9'), 'the run with acc 0.9');
  check(new URL(page.url()).searchParams.get('filter') === "metrics.acc > 0.6 and params.lr = '0.9'",
        'the filter is in the URL');
  await visit('runs-filtered');

  await page.locator('tbody a').first().click();
  await page.waitForURL(/\/runs\/[0-9a-f]{32}/);
  check((await page.textContent('h1')).startsWith('Run '), 'the run page');
  check((await page.locator('main').textContent()).includes('train.lr'), 'its params');
  await visit('run');

  await page.goto(`${base}/runs?per=1&lang=en`);
  await page.getByRole('link', { name: /Next/ }).click();
  await page.waitForURL(/page=2/);
  check((await page.locator('tbody tr').count()) === 1, 'the second page has the older run');

  await page.getByRole('link', { name: '日本語' }).click();
  await page.waitForURL(/lang=ja/);
  check((await page.textContent('h1')) === '実行', 'the runs page in Japanese');
  await visit('runs-ja');

  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement?.classList.contains('skip')),
        'the first Tab reaches "skip to content"');
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
finish(result);
