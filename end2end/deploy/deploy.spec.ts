import { test, expect } from '@playwright/test';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { chromium } from '../chromium';
import { connectedMerchant, consent, logInAsOperator, PASSWORD, signUp, uniqueEmail } from '../tests/helpers';
import { baseUrl, OPERATOR, readStack, startInstance, stopProcess, waitFor, writeStack } from './stack';

const stack = readStack();
test.skip(!!stack.skip, stack.skip ?? '');
// The browser trusts the deployment's certificate (by its public key) and no other;
// certificate errors are not ignored.
test.use({
  launchOptions: { ...chromium, args: [...chromium.args, `--ignore-certificate-errors-spki-list=${stack.spki ?? ''}`] },
});
/** The deployment's certificate, the only one Node's requests trust. */
const ca = stack.skip ? undefined : fs.readFileSync(path.join(stack.dir, 'cert.pem'));

/** A form post over TLS from a chosen local address (the machine's other loopback addresses). */
function post(from: string, path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const body = new URLSearchParams(form).toString();
  return new Promise<{ status: number; location?: string }>((resolve, reject) => {
    const request = https.request(
      `${baseUrl(stack)}${path}`,
      {
        method: 'POST',
        localAddress: from,
        ca,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          origin: baseUrl(stack),
          ...headers,
        },
      },
      (response) => {
        response.resume();
        resolve({ status: response.statusCode ?? 0, location: response.headers.location });
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

test('a merchant connects Airwallex through https', async ({ page, context }) => {
  const responses: Record<string, string>[] = [];
  page.on('response', (r) => { if (r.url().startsWith(baseUrl(stack))) responses.push(r.headers()); });
  await signUp(page, uniqueEmail('tls'));
  const session = (await context.cookies()).find((c) => c.name.endsWith('awx_session'));
  expect(session?.name).toBe('__Host-awx_session');
  expect(session?.secure).toBe(true);
  expect(session?.httpOnly).toBe(true);
  expect(responses.every((h) => h['strict-transport-security'] === 'max-age=31536000; includeSubDomains')).toBe(true);

  await page.getByRole('button', { name: 'Connect Airwallex' }).click();
  const authorize = new URL(page.url());
  expect(authorize.searchParams.get('redirect_uri')).toBe(`${baseUrl(stack)}/oauth/callback`);
  await consent(page, 'Authorize', { existing: 'Harbour Coffee Roasters Pty Ltd' });
  await expect(page).toHaveURL(new RegExp(`^${baseUrl(stack)}/connection\\?notice=connected`));
  await expect(page.locator('section.account')).toContainText('Harbour Coffee Roasters Pty Ltd');
});

test('an operator works through https', async ({ page }) => {
  const merchant = await page.context().browser()!.newPage({ baseURL: baseUrl(stack) });
  const email = await connectedMerchant(merchant, uniqueEmail('tls-shop'), 'Lim Wei Ling');
  await merchant.close();

  await logInAsOperator(page, OPERATOR.email, OPERATOR.password);
  await page.getByLabel('Search').fill(email);
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByRole('link', { name: email }).click();
  await page.getByRole('button', { name: 'Refresh now' }).click();
  await expect(page).toHaveURL(/notice=refreshed/);
  await expect(page.locator('ol.timeline li').first()).toHaveAttribute('data-kind', 'refreshed');
});

test('throttling keys on the real client address, whatever the client claims', async () => {
  const email = uniqueEmail('guarded');
  expect((await post('127.0.0.4', '/signup', { email, password: PASSWORD })).status).toBe(303);
  for (let i = 0; i < 5; i++) {
    expect((await post('127.0.0.2', '/login', { email, password: 'wrong wrong wrong' })).status).toBe(401);
  }
  expect((await post('127.0.0.2', '/login', { email, password: PASSWORD })).status).toBe(429);
  // Claiming to be someone else does not help: nginx appends the real address.
  const spoofed = await post('127.0.0.2', '/login', { email, password: PASSWORD }, { 'x-forwarded-for': '198.51.100.77' });
  expect(spoofed.status).toBe(429);
  // The owner, from another address, is not locked out.
  const owner = await post('127.0.0.3', '/login', { email, password: PASSWORD });
  expect(owner.status).toBe(303);
  expect(owner.location).toBe('/connection');
});

test('a rolling restart of both instances under steady load loses no request', async () => {
  const agent = new https.Agent({ keepAlive: true, ca, maxSockets: 8 });
  let sent = 0;
  const failures: string[] = [];
  let running = true;
  const get = (path: string) =>
    new Promise<void>((resolve) => {
      const request = https.get(`${baseUrl(stack)}${path}`, { agent }, (response) => {
        response.resume();
        response.on('end', () => {
          if (response.statusCode !== 200) failures.push(`${path}: ${response.statusCode}`);
          resolve();
        });
      });
      request.on('error', (e) => {
        failures.push(`${path}: ${e.message}`);
        resolve();
      });
    });
  const workers = Array.from({ length: 6 }, async (_, w) => {
    while (running) {
      await get(w % 2 ? '/' : '/healthz');
      sent++;
    }
  });
  const restart = async (n: number) => {
    await stopProcess(stack.pids[`app${n}`]);
    startInstance(stack, n);
    await waitFor(`http://127.0.0.1:${stack.apps[n]}/readyz`);
    writeStack(stack);
  };
  await new Promise((r) => setTimeout(r, 1000));
  await restart(0);
  // Let nginx take the restarted instance back before the other one goes.
  await new Promise((r) => setTimeout(r, 6000));
  await restart(1);
  await new Promise((r) => setTimeout(r, 2000));
  running = false;
  await Promise.all(workers);
  agent.destroy();
  expect(failures).toEqual([]);
  expect(sent).toBeGreaterThan(200);
});

test('the certificate is checked: a client that does not trust it is refused', async () => {
  const trusted = await new Promise<number>((resolve, reject) => {
    https.get(`${baseUrl(stack)}/healthz`, { ca }, (r) => { r.resume(); resolve(r.statusCode ?? 0); }).on('error', reject);
  });
  expect(trusted).toBe(200);
  const refused = await new Promise<Error | undefined>((resolve) => {
    https.get(`${baseUrl(stack)}/healthz`, (r) => { r.resume(); resolve(undefined); }).on('error', resolve);
  });
  expect(refused?.message ?? 'accepted without trusting the certificate').toMatch(/self[- ]signed|certificate/i);
});
