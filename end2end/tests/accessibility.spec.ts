import { test, expect, Page } from '@playwright/test';
import { accessible, connectedMerchant, consent, signUp, SIM, uniqueEmail, logInAsOperator, tabTo } from './helpers';
import { OPERATOR_EMAIL, OPERATOR_PASSWORD } from '../playwright.config';

test('every page a visitor and a merchant see has no serious accessibility violation', async ({ page }) => {
  // Many pages, each with an axe run: more than the default 30 s on a busy machine.
  test.slow();
  for (const path of ['/', '/signup', '/login', '/password-reset', '/no-such-page', '/connect/problem?reason=declined']) {
    await page.goto(path);
    await accessible(page, path);
  }
  // Sign-up with problems shown.
  await page.goto('/signup');
  await page.getByLabel('Email').fill(uniqueEmail('weak'));
  await page.getByLabel('Password').fill('Password@123');
  await page.getByRole('button', { name: 'Create account' }).click();
  await accessible(page, 'sign-up with errors');

  await signUp(page, uniqueEmail('a11y'));
  await accessible(page, 'connection, not connected');
  await page.goto('/connect/problem?reason=state_mismatch');
  await accessible(page, 'a callback problem');
  await page.goto('/connection');
  await page.getByRole('button', { name: 'Create an Airwallex account' }).click();
  await accessible(page, "the simulator's consent page");
  const business = `Accessible Goods ${Date.now()}`;
  await consent(page, 'Authorize', { newBusiness: business });
  await expect(page.locator('[data-status="connected"]')).toBeVisible();
  await accessible(page, 'connection, connected');
  const accountId = (await page.locator('section.account dd').nth(1).textContent())!.trim();

  await page.goto(`${SIM}/merchant/apps?account=${accountId}`);
  await page.getByRole('button', { name: 'Disconnect awx-onboard' }).click();
  await expect(async () => {
    await page.goto('/connection');
    await expect(page.locator('[data-status="needs_reconnect"]')).toBeVisible({ timeout: 500 });
  }).toPass({ timeout: 10_000 });
  await accessible(page, 'connection, needs reconnection');
  await page.goto('/connection/disconnect');
  await accessible(page, 'disconnect confirmation');
  for (const path of ['/connection/account', '/connection/second-factor']) {
    await page.goto(path);
    await accessible(page, path);
  }
});

test('every operator page has no serious accessibility violation', async ({ page, browser }) => {
  test.slow();
  // A connection of this test's own, so that the dashboard and a connection page have
  // something to show whatever ran before.
  const merchantContext = await browser.newContext({ baseURL: test.info().project.use.baseURL });
  const merchant = await merchantContext.newPage();
  const email = await connectedMerchant(merchant, uniqueEmail('a11y-ops'), 'Harbour Coffee Roasters Pty Ltd');
  await merchantContext.close();

  await logInAsOperator(page, OPERATOR_EMAIL, OPERATOR_PASSWORD, true);
  await accessible(page, 'dashboard');
  await page.getByLabel('Search').fill(email);
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByRole('link', { name: email }).click();
  await expect(page.locator('ol.timeline li').first()).toBeVisible();
  await accessible(page, 'a connection');
  await page.goto('/operator/api-keys');
  await accessible(page, 'API keys');
  await page.getByLabel('Name').fill(`a11y ${Date.now()}`);
  await page.getByLabel(/^tokens:read/).check();
  await page.getByRole('button', { name: 'Create key' }).click();
  await accessible(page, 'a new key shown once');
  await page.goto('/operator/webhooks');
  await page.getByLabel('URL').fill('ftp://files.example/hooks');
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  await accessible(page, 'webhooks, with a form problem');
  await page.goto('/operator/webhooks');
  await page.getByLabel('URL').fill('http://127.0.0.1:9/hooks');
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  await accessible(page, 'webhooks, a new secret');
  await page.getByRole('link', { name: 'http://127.0.0.1:9/hooks' }).first().click();
  await accessible(page, 'an endpoint and its deliveries');
  await page.goto('/operator/emails');
  await accessible(page, 'the mail outbox');
  await page.goto('/operator/team');
  await accessible(page, 'the team and the security log');
});

test('a merchant signs up, connects and disconnects with the keyboard alone', async ({ page }) => {
  await page.goto('/signup');
  await tabTo(page, page.getByLabel('Email'), 'the email field');
  await page.keyboard.type(uniqueEmail('keys'));
  await tabTo(page, page.getByLabel('Password'), 'the password field');
  await page.keyboard.type('correct horse battery staple');
  await tabTo(page, page.getByRole('button', { name: 'Create account' }), 'Create account');
  await page.keyboard.press('Enter');
  await expect(page.locator('[data-status="not_connected"]')).toBeVisible();

  await tabTo(page, page.getByRole('button', { name: 'Connect Airwallex' }), 'Connect Airwallex');
  await page.keyboard.press('Space');
  await expect(page).toHaveURL(new RegExp(`^${SIM}/oauth/authorize`));
  // A radio group takes one Tab stop (the chosen account); arrows move the choice.
  await tabTo(page, page.locator('input[name="account"]:checked'), 'the chosen Airwallex account');
  for (let i = 0; i < 10 && !(await page.getByLabel('Lim Wei Ling').isChecked()); i++) {
    await page.keyboard.press('ArrowDown');
  }
  await expect(page.getByLabel('Lim Wei Ling')).toBeChecked();
  await tabTo(page, page.getByRole('button', { name: 'Authorize' }), 'Authorize');
  await page.keyboard.press('Enter');
  await expect(page.locator('[data-status="connected"]')).toBeVisible();

  await tabTo(page, page.getByRole('link', { name: 'Disconnect' }), 'Disconnect');
  await page.keyboard.press('Enter');
  await expect(page.getByText('Disconnect Airwallex?')).toBeVisible();
  await tabTo(page, page.getByRole('button', { name: 'Yes, disconnect' }), 'the confirmation');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/notice=disconnected/);
  await expect(page.locator('[data-status="disconnected"]')).toBeVisible();
});
