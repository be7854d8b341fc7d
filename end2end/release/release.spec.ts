import { test, expect } from '@playwright/test';

test('the unpacked release serves its hydrated pages and cacheable, compressed assets', async ({ page, request }) => {
  const errors: string[] = [];
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  page.on('pageerror', (err) => errors.push(err.message));
  // A page that does not hydrate says why: a script or wasm that failed to load, or a panic.
  page.on('requestfailed', (request) => errors.push(`${request.url()}: ${request.failure()?.errorText}`));
  page.on('response', (response) => {
    if (response.status() >= 400) errors.push(`${response.url()}: HTTP ${response.status()}`);
  });

  await page.goto('/');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Connect your Airwallex account in a minute');
  // Hydrated: only the (wasm-opt'ed) WebAssembly folds the answers and opens them on click.
  const question = page.getByRole('button', { name: 'Do you store my Airwallex password?' });
  try {
    await expect(page.locator('#faq-answer-1')).toBeHidden({ timeout: 15_000 });
  } catch (error) {
    throw new Error(`the page did not hydrate; the browser saw: ${JSON.stringify(errors)}\n${error}`);
  }
  await question.click();
  await expect(page.locator('#faq-answer-1')).toContainText('Never.');
  expect(errors).toEqual([]);

  // Hashed names for the stylesheet, the script and the wasm, cached for a year, with
  // brotli and gzip twins.
  const html = await (await request.get('/')).text();
  const assets = [...html.matchAll(/\/pkg\/awx-onboard\.[A-Za-z0-9_-]+\.(?:css|js|wasm)/g)].map((m) => m[0]);
  for (const kind of ['css', 'js', 'wasm']) {
    expect(assets.some((a) => a.endsWith(`.${kind}`)), `a hashed .${kind} in ${assets}`).toBe(true);
  }
  for (const asset of new Set(assets)) {
    for (const encoding of ['br', 'gzip']) {
      const response = await request.get(asset, { headers: { 'accept-encoding': encoding } });
      expect(response.status(), asset).toBe(200);
      expect(response.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(response.headers()['content-encoding'], `${asset} as ${encoding}`).toBe(encoding);
    }
  }
  const icon = await request.get('/favicon.ico');
  expect(icon.status()).toBe(200);
  expect(icon.headers()['last-modified']).toBeTruthy();
});

test("what a merchant's browser downloads: one small wasm, for the page's islands alone", async ({ request }) => {
  // Every page names the same bundle: the code of the site's islands (the questions on the
  // home page), nothing of the pages themselves, which arrive as complete HTML.
  const bundles = new Set<string>();
  for (const path of ['/', '/signup', '/login', '/connect/problem?reason=declined']) {
    const html = await (await request.get(path)).text();
    const named = [...html.matchAll(/\/pkg\/awx-onboard\.[A-Za-z0-9_-]+\.wasm/g)].map((m) => m[0]);
    expect(named.length, `${path} preloads its wasm`).toBeGreaterThan(0);
    named.forEach((n) => bundles.add(n));
  }
  expect([...bundles]).toHaveLength(1);
  const [wasm] = [...bundles];
  // The target (issue #22): at most 250 KB over gzip -9; the artifact's gzip twin is what
  // a browser asking for gzip receives.
  const gzip = await request.get(wasm, { headers: { 'accept-encoding': 'gzip' } });
  expect(gzip.headers()['content-encoding']).toBe('gzip');
  const sent = Number(gzip.headers()['content-length']);
  expect(sent, 'the wasm as sent with gzip, in bytes').toBeGreaterThan(10_000);
  expect(sent, 'the wasm as sent with gzip, in bytes').toBeLessThanOrEqual(250_000);
});
