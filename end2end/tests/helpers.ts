import { expect, Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';

export const SIM = process.env.E2E_SIM_URL ?? `http://127.0.0.1:${Number(process.env.E2E_PORT ?? 3300) + 1}`;
export const PASSWORD = 'correct horse battery staple';

export function uniqueEmail(prefix = 'merchant'): string {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

export async function signUp(page: Page, email = uniqueEmail()): Promise<string> {
  await page.goto('/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/connection\?notice=welcome/);
  await expect(page.locator('[data-status="not_connected"]')).toBeVisible();
  return email;
}

/** On the simulator's consent page: pick an account (or create one) and decide. */
export async function consent(page: Page, decision: 'Authorize' | 'Decline', account?: { newBusiness?: string; existing?: string }) {
  await expect(page).toHaveURL(new RegExp(`^${SIM}/oauth/authorize`));
  await expect(page.getByRole('heading', { level: 1 })).toContainText('wants to access your Airwallex account');
  if (account?.newBusiness) {
    await page.getByLabel('Create a new Airwallex account').check();
    await page.getByLabel('Business name').fill(account.newBusiness);
    await page.getByLabel('Email').fill(`owner-${Date.now()}@example.com`);
  } else if (account?.existing) {
    await page.getByLabel(account.existing).check();
  }
  await page.getByRole('button', { name: decision }).click();
}

/** Signs up as `email` in `page` and connects the simulator's `account`; returns the email. */
export async function connectedMerchant(page: Page, email: string, account: string): Promise<string> {
  await signUp(page, email);
  await page.getByRole('button', { name: 'Connect Airwallex' }).click();
  await consent(page, 'Authorize', { existing: account });
  await expect(page.locator('[data-status="connected"]')).toBeVisible();
  return email;
}

/** axe-core on the page as it stands: no serious or critical violation (WCAG 2.2 A/AA). */
export async function accessible(page: Page, what: string) {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'])
    .analyze();
  const serious = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(serious, `${what} (${page.url()})`).toEqual([]);
}

