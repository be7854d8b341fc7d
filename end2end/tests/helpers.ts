import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { expect, Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { FACTORS_FILE } from '../playwright.config';

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
 * step a code was given for (each code is taken once), the recovery codes. Kept in a file of
 * the run, so that a worker restarted after a failed test still knows them. */
type Factor = { secret: Buffer; lastStep: number; recovery: string[] };
const factors = {
  all(): Record<string, { secret: string; lastStep: number; recovery: string[] }> {
    return fs.existsSync(FACTORS_FILE) ? JSON.parse(fs.readFileSync(FACTORS_FILE, 'utf8')) : {};
  },
  get(key: string): Factor | undefined {
    const found = this.all()[key];
    return found && { ...found, secret: Buffer.from(found.secret, 'base64') };
  },
  set(key: string, factor: Factor) {
    const all = this.all();
    all[key] = { ...factor, secret: factor.secret.toString('base64') };
    fs.writeFileSync(FACTORS_FILE, JSON.stringify(all));
  },
};

export function base32Decode(text: string): Buffer {
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
    await page.getByLabel('Code', { exact: true }).fill(totp(secret, step));
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page).toHaveURL(/\/login\/recovery-codes$/);
    if (audit) await accessible(page, 'recovery codes');
    factors.set(key, { secret, lastStep: step, recovery: await page.locator('[data-recovery-code]').allTextContents() });
    await page.getByRole('link', { name: 'Continue' }).click();
  } else {
    await page.getByLabel('Code', { exact: true }).fill(nextCode(page, email));
    await page.getByRole('button', { name: 'Continue' }).click();
  }
  await expect(page).toHaveURL(/\/operator$/);
}

/** Remembers a key enrolled outside logInAsOperator (an invitee's), with its codes. */
export function enrolled(page: Page, email: string, secret: string, step: number, recovery: string[]) {
  factors.set(`${new URL(page.url()).origin}|${email}`, { secret: base32Decode(secret), lastStep: step, recovery });
}

/** A code of `email`'s second factor not given before (this step's or the next one's, else
 * a recovery code), as the phone would show it. */
export function nextCode(page: Page, email: string): string {
  const key = `${new URL(page.url()).origin}|${email}`;
  const factor = factors.get(key);
  if (!factor) throw new Error(`no second factor enrolled for ${key} in this run`);
  const step = Math.floor(Date.now() / 1000 / 30);
  const next = Math.max(step, factor.lastStep + 1);
  if (next <= step + 1) {
    factor.lastStep = next;
    factors.set(key, factor);
    return totp(factor.secret, next);
  }
  const code = factor.recovery.pop()!;
  factors.set(key, factor);
  return code;
}

/** Tabs until `target` has the focus (and shows it), as a keyboard user would. */
export async function tabTo(page: Page, target: ReturnType<Page['locator']>, what: string) {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) {
      const visible = await target.evaluate((el) => {
        const style = getComputedStyle(el);
        return (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none';
      });
      expect(visible, `the focus on ${what} is visible`).toBe(true);
      return;
    }
  }
  throw new Error(`Tab never reached ${what}`);
}
