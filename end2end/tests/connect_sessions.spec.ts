import { test, expect, Page } from '@playwright/test';
import * as crypto from 'node:crypto';
import { accessible, consent, SIM, logInAsOperator } from './helpers';
import { OPERATOR_EMAIL, OPERATOR_PASSWORD, PLATFORM_URL } from '../playwright.config';

// A platform (platform-server.mjs) embeds awx-onboard: its user clicks, consents on the
// simulator and lands back on the platform's page, which reads the account through the
// API with its service key. The platform hears what happens by webhook.

type Hook = { headers: Record<string, string>; body: string };

async function received(): Promise<Hook[]> {
  const response = await fetch(`${PLATFORM_URL}/received`);
  return response.json();
}

function hooksFor(hooks: Hook[], externalId: string) {
  return hooks.map((h) => ({ ...h, json: JSON.parse(h.body) })).filter((h) => h.json.data.external_id === externalId);
}

let secret = '';

test.beforeAll(async ({ browser }) => {
  // The operator registers the platform's receiver for every event.
  const page = await browser.newPage();
  await logInAsOperator(page, OPERATOR_EMAIL, OPERATOR_PASSWORD);
  await page.goto('/operator/webhooks');
  await page.getByLabel('URL').fill(`${PLATFORM_URL}/hooks`);
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  secret = await page.getByLabel('The new secret').inputValue();
  await page.close();
});

async function connectFromPlatform(page: Page, user: string, signup: boolean) {
  await page.goto(`${PLATFORM_URL}/app?user=${user}${signup ? '&signup=1' : ''}`);
  await page.getByRole('button', { name: 'Connect with Airwallex' }).click();
  // awx-onboard's landing page: the platform's name and whom the link is for.
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Connect Airwallex to Acme Platform');
  await expect(page.locator('main')).toContainText(`Shop of ${user}`);
}

test('a merchant connects from the platform, comes back to it, and a new link reconnects in place', async ({ page }) => {
  const user = `user-${Date.now()}`;
  const business = `Platform Goods ${Date.now()}`;
  await connectFromPlatform(page, user, true);
  await accessible(page, 'the connect link landing page');
  await page.getByRole('button', { name: 'Create an Airwallex account' }).click();
  await consent(page, 'Authorize', { newBusiness: business });

  // Back on the platform, which shows the outcome and the account it read through the API.
  await expect(page).toHaveURL(new RegExp(`^${PLATFORM_URL}/back\\?user=${user}&connect_session=cs_[^&]+&status=connected$`));
  await expect(page.locator('[data-outcome]')).toHaveText('Outcome: connected');
  await expect(page.locator('[data-session-outcome="connected"]')).toBeVisible();
  await expect(page.locator('[data-status="connected"]')).toBeVisible();
  await expect(page.locator('[data-business]')).toHaveText(business);
  const accountId = (await page.locator('[data-account]').textContent())!.trim();
  expect(accountId).toMatch(/^acct_/);
  // The merchant's balances, read through awx-onboard's Airwallex proxy: the platform
  // holds a service key, never a token.
  await expect(page.getByRole('table')).toContainText('HTTP 200');
  await expect(page.locator('[data-balance="AUD"]')).toBeVisible();
  await expect(page.locator('[data-balance="USD"]')).toBeVisible();

  // The merchant's own page works during that session and leads back to the platform.
  await page.goto('/connection');
  await expect(page.locator('[data-status="connected"]')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Back to Acme Platform' })).toHaveAttribute('href', `${PLATFORM_URL}/back?user=${user}`);

  // The merchant revokes the app on Airwallex: the platform hears it, with its own id.
  await page.goto(`${SIM}/merchant/apps?account=${accountId}`);
  await page.getByRole('button', { name: 'Disconnect awx-onboard' }).click();
  await expect(page.getByText('The app was disconnected.')).toBeVisible();
  await expect
    .poll(async () => hooksFor(await received(), user).map((h) => h.json.type), { timeout: 15_000 })
    .toEqual(expect.arrayContaining(['connection.connected', 'connect_session.completed', 'connection.needs_reconnect']));
  const hooks = hooksFor(await received(), user);
  const revoked = hooks.find((h) => h.json.type === 'connection.needs_reconnect')!;
  expect(revoked.json.data).toMatchObject({ external_id: user, status: 'needs_reconnect', reason: 'revoked', tags: { plan: 'gold' } });
  for (const hook of hooks) {
    const expected = crypto
      .createHmac('sha256', Buffer.from(secret.slice('whsec_'.length), 'base64'))
      .update(`${hook.headers['webhook-id']}.${hook.headers['webhook-timestamp']}.${hook.body}`)
      .digest('base64');
    expect(hook.headers['webhook-signature'].split(' ')).toContain(`v1,${expected}`);
  }
  const connectedHook = hooks.find((h) => h.json.type === 'connection.connected')!;

  // A new link from the platform reconnects the same connection.
  await connectFromPlatform(page, user, false);
  await expect(page.locator('main')).toContainText('renewed');
  await page.getByRole('button', { name: 'Connect Airwallex' }).click();
  await consent(page, 'Authorize', { existing: business });
  await expect(page).toHaveURL(new RegExp(`status=reconnected$`));
  await expect(page.locator('[data-status="connected"]')).toBeVisible();
  await expect(page.locator('[data-account]')).toHaveText(accountId);
  await expect
    .poll(async () => hooksFor(await received(), user).filter((h) => h.json.type === 'connection.reconnected').length, { timeout: 15_000 })
    .toBe(1);
  const reconnected = hooksFor(await received(), user).find((h) => h.json.type === 'connection.reconnected')!;
  expect(reconnected.json.data.merchant_id).toBe(connectedHook.json.data.merchant_id);
  expect(reconnected.json.data.account_id).toBe(accountId);
});

test('the landing page works without JavaScript, and a link works once', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const user = `nojs-${Date.now()}`;
  await connectFromPlatform(page, user, false);
  const link = page.url();
  expect(link).toMatch(/\/connect-link\/[A-Za-z0-9_-]{43}$/);
  await page.getByRole('button', { name: 'Connect Airwallex' }).click();
  await consent(page, 'Decline');
  await expect(page).toHaveURL(new RegExp(`status=declined$`));
  await expect(page.locator('[data-outcome]')).toHaveText('Outcome: declined');

  // The same link again: gone, with the way back to the platform.
  await page.goto(link);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('This link can no longer be used');
  await expect(page.getByRole('link', { name: 'Back to Acme Platform' })).toHaveAttribute('href', `${PLATFORM_URL}/back?user=${user}`);
  await context.close();
});
