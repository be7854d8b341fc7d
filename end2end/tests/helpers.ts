import * as crypto from 'node:crypto';
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


/** What an operator's phone holds for this run: the key shown at enrolment, the last time
 * step a code was given for (each code is taken once), the recovery codes. */
const factors = new Map<string, { secret: Buffer; lastStep: number; recovery: string[] }>();

function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const c of text.replace(/[\s=]/g, '').toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238: HMAC-SHA-1 of the 30-second step, six digits. */
export function totp(secret: Buffer, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const hash = crypto.createHmac('sha1', secret).update(counter).digest();
  const offset = hash[19] & 0x0f;
  const value = ((hash[offset] & 0x7f) << 24) | (hash[offset + 1] << 16) | (hash[offset + 2] << 8) | hash[offset + 3];
  return String(value % 1_000_000).padStart(6, '0');
}

/** Logs in as an operator with the password and the second factor: enrols the first time
 * (with the key the page shows, as a password manager would), then gives a code not given
 * before (this step's or the next one's), else a recovery code. Ends on the dashboard. */
export async function logInAsOperator(page: Page, email: string, password: string, audit = false) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(/\/login\/second-factor$/);
  const key = `${new URL(page.url()).origin}|${email}`;
  const step = Math.floor(Date.now() / 1000 / 30);
  const shown = page.locator('[data-secret]');
  if (await shown.count()) {
    if (audit) await accessible(page, 'second-factor enrolment');
    const secret = base32Decode((await shown.getAttribute('data-secret'))!);
    factors.set(key, { secret, lastStep: step, recovery: [] });
    await page.getByLabel('Code', { exact: true }).fill(totp(secret, step));
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page).toHaveURL(/\/login\/recovery-codes$/);
    if (audit) await accessible(page, 'recovery codes');
    factors.get(key)!.recovery = await page.locator('[data-recovery-code]').allTextContents();
    await page.getByRole('link', { name: 'Continue' }).click();
  } else {
    const factor = factors.get(key);
    if (!factor) throw new Error(`no second factor enrolled for ${key} in this run`);
    const next = Math.max(step, factor.lastStep + 1);
    let code: string;
    if (next <= step + 1) {
      factor.lastStep = next;
      code = totp(factor.secret, next);
    } else {
      code = factor.recovery.pop()!;
    }
    await page.getByLabel('Code', { exact: true }).fill(code);
    await page.getByRole('button', { name: 'Continue' }).click();
  }
  await expect(page).toHaveURL(/\/operator$/);
}
