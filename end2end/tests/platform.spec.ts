import { test, expect, Page } from '@playwright/test';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { connectedMerchant, consent, signUp, uniqueEmail, logInAsOperator } from './helpers';
import { OPERATOR_EMAIL, OPERATOR_PASSWORD } from '../playwright.config';

async function operatorPage(page: Page) {
  await logInAsOperator(page, OPERATOR_EMAIL, OPERATOR_PASSWORD);
}

test('an operator creates an API key, sees it once, uses it, and revokes it', async ({ page, request }) => {
  await operatorPage(page);
  await page.getByRole('navigation', { name: 'Operator' }).getByRole('link', { name: 'API keys' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('API keys');

  const name = `backend ${Date.now()}`;
  await page.getByLabel('Name').fill(name);
  await page.getByLabel(/^connections:read/).check();
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = page.getByLabel('The new secret');
  await expect(secret).toBeVisible();
  const key = await secret.inputValue();
  expect(key).toMatch(/^awx_pk_/);

  // The key works, within its scope only.
  const auth = { Authorization: `Bearer ${key}` };
  const listed = await request.get('/api/platform/v1/connections', { headers: auth });
  expect(listed.status()).toBe(200);
  expect(Array.isArray((await listed.json()).connections)).toBe(true);
  const token = await request.post('/api/platform/v1/merchants/1/access-token', { headers: auth });
  expect(token.status()).toBe(403);
  expect((await token.json()).code).toBe('forbidden');

  // Shown once: not when the page is opened again; the list shows who made it and that it
  // was used.
  await page.goto('/operator/api-keys');
  await expect(page.getByLabel('The new secret')).toHaveCount(0);
  const row = page.locator('tr', { hasText: name });
  await expect(row).toContainText(OPERATOR_EMAIL);
  await expect(row).not.toContainText('never');
  expect(await page.content()).not.toContain(key);

  await row.getByRole('button', { name: `Revoke ${name}` }).click();
  await expect(page.getByRole('status')).toContainText('revoked');
  await expect(page.locator('tr', { hasText: name })).toContainText('Revoked');
  const refused = await request.get('/api/platform/v1/connections', { headers: auth });
  expect(refused.status()).toBe(401);
});

test('an operator registers a webhook endpoint, a merchant connects, the platform hears it signed', async ({ browser }) => {
  // The platform's receiver: a real HTTP server in this test.
  const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/awx`;

  try {
    const page = await browser.newPage();
    await operatorPage(page);
    await page.goto('/operator/webhooks');
    await page.getByLabel('URL').fill(url);
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const secret = await page.getByLabel('The new secret').inputValue();
    expect(secret).toMatch(/^whsec_/);

    const merchant = await browser.newPage();
    const email = await connectedMerchant(merchant, uniqueEmail('hooked'), 'Lim Wei Ling');

    await expect.poll(() => received.filter((r) => r.body.includes(email)).length, { timeout: 10_000 }).toBe(1);
    const event = received.find((r) => r.body.includes(email))!;
    const body = JSON.parse(event.body);
    expect(body.type).toBe('connection.connected');
    expect(body.data).toMatchObject({ email, status: 'connected' });
    // Standard Webhooks: HMAC-SHA256 over "id.timestamp.body" with the secret's bytes.
    const id = event.headers['webhook-id'] as string;
    const timestamp = event.headers['webhook-timestamp'] as string;
    expect(id).toBe(body.id);
    const expected = crypto
      .createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
      .update(`${id}.${timestamp}.${event.body}`)
      .digest('base64');
    expect((event.headers['webhook-signature'] as string).split(' ')).toContain(`v1,${expected}`);

    // The operator sees the delivery on the endpoint's page.
    await page.goto('/operator/webhooks');
    await page.getByRole('link', { name: url }).click();
    const delivery = page.locator(`tr[data-status="delivered"]`, { hasText: body.id });
    await expect(delivery).toContainText('connection.connected');
    await expect(delivery).toContainText('HTTP 204');
  } finally {
    server.close();
  }
});
