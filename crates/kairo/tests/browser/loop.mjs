// The web UI's walk through the loop in Debian's Chromium (playwright-core), logged in through
// the test OIDC provider's own login form, as issue 18 asks: log in → find a run by filter →
// compare two runs → approve a pending promotion as an approver → see the deployment change
// → open the incident timeline; then a scientist, who sees no decision form and whose forged
// decision is refused. Each page: a screenshot into OUT_DIR, axe-core's serious/critical
// violations, console errors on Kairo's pages (a CSP violation is one).
//
// Prints `STEP approved` after the approval and waits for a line on stdin (the test deploys
// the approved version meanwhile); ends with one JSON line. Exit 1 on any failure.
//
// Usage: NODE_PATH="$KAIRO_TEST_BROWSER_NODE_PATH" node loop.mjs BASE_URL OUT_DIR

import { createInterface } from 'node:readline';
import { finish, launch, report, visitor } from './harness.mjs';

const [base, out] = process.argv.slice(2);
const { result, check } = report();
const visit = visitor(result, out);
const stdin = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdin.once('line', resolve));

const browser = await launch();

// A fresh browser profile logged in as `user` through the provider's forms.
async function login(user) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && page.url().startsWith(base)) result.consoleErrors.push(`${user}: ${m.text()}`);
  });
  page.on('pageerror', (e) => result.consoleErrors.push(`${user}: ${e}`));
  await page.goto(`${base}/?lang=en`);
  await page.waitForURL(/\/interaction\//);
  await page.fill('input[name=login]', user);
  await page.fill('input[name=password]', 'any password');
  await page.click('button[type=submit]');
  // The provider may ask for consent once.
  await page.waitForURL((u) => u.href.startsWith(base) || /\/interaction\/.+/.test(u.pathname));
  if (!page.url().startsWith(base)) {
    await page.click('button[type=submit]');
  }
  await page.waitForURL((u) => u.href.startsWith(base) && !u.pathname.startsWith('/auth/'));
  return { context, page };
}

try {
  // 1. Log in as bob (his provider group makes him an approver).
  const bob = await login('bob');
  const page = bob.page;
  check((await page.textContent('h1')) === 'Overview', 'bob lands on the overview');
  const cookies = await bob.context.cookies();
  const session = cookies.find((c) => c.name === 'kairo_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
  await visit(page, 'overview');

  // 2. Find a run by filter.
  await page.getByRole('link', { name: 'Runs', exact: true }).click();
  await page.waitForURL(/\/runs/);
  await page.getByLabel('Filter (MLflow search syntax)').fill("params.lr = '0.9'");
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/filter=/);
  check((await page.locator('tbody tr').count()) === 1, 'the filter finds one run');
  await visit(page, 'runs-filtered');

  // 3. Compare the two training runs: tick both.
  await page.goto(`${base}/runs?lang=en&filter=${encodeURIComponent("attributes.stage = 'train'")}`);
  const boxes = page.locator('tbody input[type=checkbox]');
  check((await boxes.count()) === 2, 'two runs to tick');
  await boxes.nth(0).check();
  await boxes.nth(1).check();
  await page.getByRole('button', { name: 'Compare selected runs' }).click();
  await page.waitForURL(/\/compare\?/);
  const why = await page.locator('section[aria-labelledby=why-h]').textContent();
  check(why.includes('train.lr'), 'the comparison says the params differ');
  check((await page.locator('svg.bars').count()) >= 1, 'a metric chart');
  await visit(page, 'compare');

  // 4. Approve a pending promotion, with a reason.
  await page.getByRole('link', { name: 'Approval inbox' }).click();
  await page.waitForURL(/\/approvals/);
  const card = page.locator('article.promotion', { hasText: 'clf v2' });
  check((await card.count()) === 1, 'v2 waits for approval');
  await visit(page, 'approvals');
  await card.getByLabel('Reason (required)').fill('holdout and gates reviewed');
  await card.getByRole('button', { name: 'Approve' }).click();
  await page.waitForURL(/\/models\/clf/);
  const history = await page.locator('section[aria-labelledby=history-h]').textContent();
  check(history.includes('holdout and gates reviewed') && history.includes('bob'), 'the alias history records bob and why');
  await visit(page, 'model');
  await page.getByRole('link', { name: 'Model card' }).first().click();
  await page.waitForURL(/\/models\/clf\/card\?version=/);
  check((await page.textContent('h1')).startsWith('Model card: clf v'), 'the model card from the model page');
  check((await page.locator('main').textContent()).includes('Promotions and approvals'), 'with its promotions');
  await visit(page, 'card');
  await page.goBack();
  console.log('STEP approved');
  await nextLine();

  // 5. The deployment changes (a deployer rolled v2 out as a canary).
  await page.getByRole('link', { name: 'Deployments', exact: true }).click();
  await page.waitForURL(/\/deployments$|\/deployments\?/);
  await page.getByRole('link', { name: 'clf', exact: true }).click();
  await page.waitForURL(/\/deployments\/clf/);
  const facts = await page.locator('main').textContent();
  check(facts.includes('20% v2') && facts.includes('deployment.started'), 'the canary of v2 and the change');
  await visit(page, 'deployment');

  // 6. The incident timeline.
  await page.getByRole('link', { name: 'Incidents', exact: true }).click();
  await page.waitForURL(/\/incidents/);
  await page.locator('tbody a').first().click();
  await page.waitForURL(/\/incidents\/\d+/);
  check((await page.textContent('h1')).startsWith('Incident'), 'the incident page');
  check((await page.locator('main table tbody tr').count()) >= 2, 'its timeline');
  await visit(page, 'incident');
  await bob.context.close();

  // 7. alice (a scientist) sees the inbox, but may not decide; a forged decision is refused.
  const alice = await login('alice');
  await alice.page.goto(`${base}/approvals?lang=en`);
  const aliceCard = alice.page.locator('article.promotion', { hasText: 'clf v3' });
  check((await aliceCard.count()) === 1, 'alice sees v3 waiting');
  check((await aliceCard.locator('form').count()) === 0, 'but no decision form');
  check((await aliceCard.textContent()).includes('Your role does not allow approving'), 'and is told why');
  await visit(alice.page, 'approvals-alice');
  const csrf = (await (await alice.page.request.get(`${base}/auth/session`)).json()).csrf_token;
  const forged = await alice.page.request.post(`${base}/ui/models/clf/promotions/decide`, {
    form: { csrf, decision: 'approve', version: '3', alias: 'champion', reason: 'me too' },
    headers: { origin: base },
  });
  check(forged.status() === 403, `alice's decision is refused (${forged.status()})`);
  check((await forged.text()).includes('alice may not approve'), 'with the reason');
  const noToken = await alice.page.request.post(`${base}/ui/models/clf/promotions/decide`, {
    form: { decision: 'approve', version: '3', alias: 'champion', reason: 'x' },
    headers: { origin: base },
  });
  check(noToken.status() === 403 && (await noToken.text()).includes('CSRF'), 'a form without the CSRF token is refused');
  await alice.context.close();
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
  stdin.close();
}
finish(result);
