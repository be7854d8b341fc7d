import { test, expect } from '@playwright/test';
import { consent, signUp, uniqueEmail, PASSWORD, SIM } from './helpers';

test.describe('merchant journey', () => {
  // Hydration problems and failed requests show up as console errors: there must be none.
  let errors: string[] = [];
  test.beforeEach(async ({ page }) => {
    errors = [];
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(`${page.url()}: ${msg.text()}`); });
    page.on('pageerror', (err) => errors.push(`${page.url()}: ${err.message}`));
  });
  test.afterEach(async () => {
    // Refused form posts answer 401/422 on purpose, and the browser logs those statuses.
    const expected = /\/(login|signup|connect\/problem)[^:]*: Failed to load resource: the server responded with a status of 4\d\d/;
    expect(errors.filter((e) => !expected.test(e))).toEqual([]);
  });
  test('sign up, connect Airwallex, see the account', async ({ page }) => {
    await signUp(page);
    await page.getByRole('button', { name: 'Connect Airwallex' }).click();
    await consent(page, 'Authorize', { existing: 'Harbour Coffee Roasters Pty Ltd' });

    await expect(page).toHaveURL(/\/connection\?notice=connected/);
    await expect(page.getByText('Your Airwallex account is connected.')).toBeVisible();
    await expect(page.locator('[data-status="connected"]')).toHaveText('Connected');
    const account = page.locator('section.account');
    await expect(account).toContainText('Harbour Coffee Roasters Pty Ltd');
    await expect(account).toContainText('Harbour Coffee');
    await expect(account).toContainText('acct_hX2kq9TfRz3Lw8VbN4aP1c');
    await expect(account).toContainText('ACTIVE');
    await expect(account).toContainText('Business');
    await expect(account).toContainText('finance@harbourcoffee.com.au');
    await expect(account).toContainText('AU');
  });

  test('text from Airwallex is shown escaped', async ({ page }) => {
    await signUp(page);
    await page.getByRole('button', { name: 'Connect Airwallex' }).click();
    await consent(page, 'Authorize', { existing: 'Maple & Finch <Trading> Ltd' });
    await expect(page.locator('section.account')).toContainText('Maple & Finch <Trading> Ltd');
    await expect(page.locator('section.account trading')).toHaveCount(0);
  });

  test('declining shows a message and trying again works', async ({ page }) => {
    await signUp(page);
    await page.getByRole('button', { name: 'Connect Airwallex' }).click();
    await consent(page, 'Decline');
    await expect(page).toHaveURL(/\/connect\/problem\?reason=declined/);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('You declined access');
    await page.getByRole('button', { name: 'Try again' }).click();
    await consent(page, 'Authorize');
    await expect(page.locator('[data-status="connected"]')).toBeVisible();
  });

  test('a revocation on Airwallex leads to a reconnect prompt, and reconnecting restores the connection', async ({ page }) => {
    await signUp(page);
    const business = `Revoked Goods ${Date.now()}`;
    await page.getByRole('button', { name: 'Create an Airwallex account' }).click();
    await consent(page, 'Authorize', { newBusiness: business });
    await expect(page.locator('section.account')).toContainText(business);
    const accountId = (await page.locator('section.account dd').nth(1).textContent())!.trim();
    expect(accountId).toMatch(/^acct_/);

    // The merchant disconnects the app on Airwallex's side.
    await page.goto(`${SIM}/merchant/apps?account=${accountId}`);
    await page.getByRole('button', { name: 'Disconnect awx-onboard' }).click();
    await expect(page.getByText('The app was disconnected.')).toBeVisible();

    await expect(async () => {
      await page.goto('/connection');
      await expect(page.locator('[data-status="needs_reconnect"]')).toBeVisible({ timeout: 500 });
    }).toPass({ timeout: 10_000 });
    await expect(page.getByRole('alert')).toContainText('revoked');

    await page.getByRole('button', { name: 'Reconnect Airwallex' }).click();
    await consent(page, 'Authorize', { existing: business });
    await expect(page).toHaveURL(/\/connection\?notice=connected/);
    await expect(page.locator('[data-status="connected"]')).toBeVisible();
    await expect(page.locator('section.account')).toContainText(business);
  });

  test('disconnecting asks for confirmation and deletes access', async ({ page }) => {
    await signUp(page);
    await page.getByRole('button', { name: 'Connect Airwallex' }).click();
    await consent(page, 'Authorize');
    await page.getByRole('link', { name: 'Disconnect' }).click();
    await expect(page.getByText('Disconnect Airwallex?')).toBeVisible();
    await page.getByRole('link', { name: 'Cancel' }).click();
    await expect(page.locator('[data-status="connected"]')).toBeVisible();
    await page.getByRole('link', { name: 'Disconnect' }).click();
    await page.getByRole('button', { name: 'Yes, disconnect' }).click();
    await expect(page).toHaveURL(/notice=disconnected/);
    await expect(page.locator('[data-status="disconnected"]')).toBeVisible();
  });

  test('log out, then log in again', async ({ page }) => {
    const email = await signUp(page);
    await page.getByRole('button', { name: 'Log out' }).click();
    await expect(page).toHaveURL(/\/login\?notice=signed_out/);
    await expect(page.getByText('You are logged out.')).toBeVisible();
    await page.goto('/connection');
    await expect(page).toHaveURL(/\/login\?next=%2Fconnection/);

    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('not the right password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page.getByRole('alert')).toHaveText('Email or password is incorrect.');
    await expect(page.getByLabel('Email')).toHaveValue(email);

    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page).toHaveURL(/\/connection$/);
  });

  test('sign-up explains what is wrong with the input', async ({ page }) => {
    await page.goto('/signup');
    await page.getByLabel('Email').fill('ana@example.com');
    await page.getByLabel('Password').fill('password1234');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page.getByRole('alert')).toContainText('too common');
    await expect(page.getByLabel('Email')).toHaveValue('ana@example.com');
  });
});

test.describe('merchant journey without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('sign up, connect, see the account, log out', async ({ page }) => {
    const email = uniqueEmail('nojs');
    await page.goto('/signup');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page.locator('[data-status="not_connected"]')).toBeVisible();
    await page.getByRole('button', { name: 'Connect Airwallex' }).click();
    await consent(page, 'Authorize', { existing: 'Lim Wei Ling' });
    await expect(page.locator('[data-status="connected"]')).toBeVisible();
    await expect(page.locator('section.account')).toContainText('Wei Ling Studio');
    await expect(page.locator('section.account')).toContainText('Individual');
    await page.getByRole('button', { name: 'Log out' }).click();
    await expect(page.getByText('You are logged out.')).toBeVisible();
  });
});
