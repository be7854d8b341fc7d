import { test, expect } from '@playwright/test';
import { connectedMerchant, consent, signUp, uniqueEmail, logInAsOperator } from './helpers';
import { OPERATOR_EMAIL, OPERATOR_PASSWORD } from '../playwright.config';

test('an operator filters, searches, opens a connection and refreshes it', async ({ browser }) => {
  // A merchant with a connection, and one who never connected.
  const merchantPage = await browser.newPage();
  const email = await connectedMerchant(merchantPage, uniqueEmail('shop'), 'Lim Wei Ling');
  // A merchant cannot see the dashboard.
  const refused = await merchantPage.goto('/operator');
  expect(refused?.status()).toBe(403);
  await merchantPage.close();
  const idle = await browser.newPage();
  const idleEmail = await signUp(idle, uniqueEmail('idle'));
  await idle.close();

  const page = await browser.newPage();
  await logInAsOperator(page, OPERATOR_EMAIL, OPERATOR_PASSWORD);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Connections');
  await expect(page.locator('[data-count="connected"] strong')).not.toHaveText('0');

  // Filter: not connected shows the idle merchant, not the connected one.
  await page.getByRole('combobox', { name: 'Status' }).selectOption('not_connected');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/status=not_connected/);
  await expect(page.getByText(idleEmail)).toBeVisible();
  await expect(page.getByText(email)).toHaveCount(0);

  // Search across everyone for the connected merchant.
  await page.getByRole('combobox', { name: 'Status' }).selectOption('');
  await page.getByLabel('Search').fill(email);
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/q=/);
  const rows = page.locator('table.data tbody tr');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText('Lim Wei Ling');
  await expect(rows.first()).toContainText('Connected');

  await page.getByRole('link', { name: email }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(email);
  const timeline = page.locator('ol.timeline li');
  await expect(timeline.first()).toHaveAttribute('data-kind', 'connected');

  await page.getByRole('button', { name: 'Refresh now' }).click();
  await expect(page).toHaveURL(/notice=refreshed/);
  await expect(timeline.first()).toHaveAttribute('data-kind', 'refreshed');
  await expect(timeline.first()).toContainText(`operator:${OPERATOR_EMAIL}`);
  await expect(page.getByText('awx_rt_')).toHaveCount(0);
});
