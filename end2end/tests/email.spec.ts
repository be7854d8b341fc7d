import { expect, Page, test } from '@playwright/test';
import { accessible, consent, SIM, signUp, logInAsOperator, tabTo } from './helpers';
import { OPERATOR_EMAIL, OPERATOR_PASSWORD, SMTP_SINK } from '../playwright.config';

type Received = { from: string; to: string[]; data: string };

/** The decoded part of a message with this content type. */
function part(message: Received, type: string): string {
  for (const section of message.data.split('\r\n--')) {
    const split = section.indexOf('\r\n\r\n');
    if (split < 0) continue;
    const head = section.slice(0, split).toLowerCase();
    if (!head.includes(`content-type: ${type}`)) continue;
    const body = section.slice(split + 4);
    if (head.includes('content-transfer-encoding: quoted-printable')) {
      return body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
    }
    if (head.includes('content-transfer-encoding: base64')) {
      return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    }
    return body;
  }
  throw new Error(`no ${type} part`);
}

function header(message: Received, name: string): string | undefined {
  const head = message.data.split('\r\n\r\n')[0].replace(/\r\n[ \t]+/g, ' ');
  const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

async function mailTo(email: string, count = 1): Promise<Received[]> {
  let found: Received[] = [];
  await expect(async () => {
    const all: Received[] = await (await fetch(`${SMTP_SINK}/messages`)).json();
    found = all.filter((m) => m.to.includes(email));
    expect(found.length).toBeGreaterThanOrEqual(count);
  }).toPass({ timeout: 15_000 });
  return found;
}

/** Opens the verification link the sign-up sent to `email` (until then no other mail goes). */
async function verifyAddress(page: Page, email: string) {
  const [message] = await mailTo(email);
  expect(header(message, 'Subject')).toBe('Confirm your email address for awx-onboard');
  const link = part(message, 'text/plain').match(/https?:\/\/\S+\/verify-email\/[A-Za-z0-9_-]+/)![0];
  await page.goto(link);
  await accessible(page, 'the verification page');
  await page.getByRole('button', { name: 'Confirm my email address' }).click();
  await expect(page).toHaveURL(/\/connection\?notice=email_verified/);
}

async function connectNewBusiness(page: Page, business: string): Promise<string> {
  await page.getByRole('button', { name: 'Create an Airwallex account' }).click();
  await consent(page, 'Authorize', { newBusiness: business });
  await expect(page.locator('section.account')).toContainText(business);
  return (await page.locator('section.account dd').nth(1).textContent())!.trim();
}

test('a revocation on Airwallex emails the merchant a link that reconnects in one click', async ({ page }) => {
  const email = await signUp(page);
  const business = `Mailed Goods ${Date.now()}`;
  const accountId = await connectNewBusiness(page, business);
  await verifyAddress(page, email);

  await page.goto(`${SIM}/merchant/apps?account=${accountId}`);
  await page.getByRole('button', { name: 'Disconnect awx-onboard' }).click();
  await expect(page.getByText('The app was disconnected.')).toBeVisible();

  const message = (await mailTo(email, 2))[1];
  expect(header(message, 'Subject')).toBe('Your Airwallex connection was disconnected');
  const text = part(message, 'text/plain');
  expect(text).toContain(business);
  const link = text.match(/https?:\/\/\S+\/connection\b/)![0];
  const html = part(message, 'text/html');
  expect(html).toContain(`href="${link}"`);
  expect(html).not.toContain('<img');

  // The link, in the merchant's browser: one click on the page reconnects.
  await page.goto(link);
  await expect(page.locator('[data-status="needs_reconnect"]')).toBeVisible();
  await page.getByRole('button', { name: 'Reconnect Airwallex' }).click();
  await consent(page, 'Authorize', { existing: business });
  await expect(page).toHaveURL(/\/connection\?notice=connected/);
  await expect(page.locator('[data-status="connected"]')).toBeVisible();

  // Unsubscribing from the email (a GET asks; the button does it), then back on from /connection.
  const unsubscribe = header(message, 'List-Unsubscribe')!.replace(/^<|>$/g, '');
  expect(header(message, 'List-Unsubscribe-Post')).toBe('List-Unsubscribe=One-Click');
  await page.goto(unsubscribe);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Stop these emails?');
  await accessible(page, 'the unsubscribe confirmation');
  await page.getByRole('button', { name: 'Stop these emails' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Emails turned off');
  await accessible(page, 'emails turned off');
  await page.getByRole('link', { name: 'Your connection' }).click();
  await expect(page.locator('[data-emails="off"]')).toBeVisible();
  await page.getByRole('button', { name: 'Turn emails on' }).click();
  await expect(page).toHaveURL(/notice=emails_on/);
  await expect(page.locator('[data-emails="on"]')).toBeVisible();
});

test('operators see the outbox with the SMTP answer, and the trends as charts', async ({ page }) => {
  const email = await signUp(page);
  const accountId = await connectNewBusiness(page, `Outbox Goods ${Date.now()}`);
  await verifyAddress(page, email);
  await page.goto(`${SIM}/merchant/apps?account=${accountId}`);
  await page.getByRole('button', { name: 'Disconnect awx-onboard' }).click();
  await mailTo(email, 2);
  await page.context().clearCookies();

  await logInAsOperator(page, OPERATOR_EMAIL, OPERATOR_PASSWORD);
  for (const title of ['Connections by status, last 30 days', 'Refreshes per hour, last 48 hours', 'Refresh tokens ending, next 60 days']) {
    await expect(page.getByRole('img', { name: title })).toBeVisible();
  }
  await page.getByRole('link', { name: 'Emails' }).click();
  const row = page.locator('tr[data-status="sent"]', { hasText: email }).first();
  await expect(row).toBeVisible();
  await expect(row).toContainText('250');
  await row.getByRole('button', { name: 'Resend' }).click();
  await expect(page).toHaveURL(/notice=resent/);
  await mailTo(email, 3);
});

test('a new address is confirmed by its link, and a forgotten password is reset by email, with the keyboard alone', async ({ page }) => {
  const email = await signUp(page);
  await expect(page.locator('[data-email-verified="no"]')).toBeVisible();
  await accessible(page, 'the connection page waiting for verification');
  await verifyAddress(page, email);
  await expect(page.locator('[data-email-verified="no"]')).toHaveCount(0);
  await page.getByRole('button', { name: 'Log out' }).click();

  // Forgot the password: from /login, by keyboard.
  await page.goto('/login');
  await tabTo(page, page.getByRole('link', { name: 'Forgot your password?' }), 'Forgot your password?');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/password-reset$/);
  await accessible(page, 'the reset request');
  await expect(page.getByLabel('Email')).toBeFocused();
  await page.keyboard.type(email);
  await page.keyboard.press('Enter');
  await expect(page.getByText('If an account has that address')).toBeVisible();
  const reset = (await mailTo(email, 2))[1];
  expect(header(reset, 'Subject')).toBe('Reset your awx-onboard password');
  const link = part(reset, 'text/plain').match(/https?:\/\/\S+\/password-reset\/[A-Za-z0-9_-]+/)![0];
  await page.goto(link);
  await accessible(page, 'the new password page');
  await expect(page.getByLabel(/^New password/)).toBeFocused();
  const fresh = 'a fresh pass phrase for 2027';
  await page.keyboard.type(fresh);
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/login\?notice=password_reset/);
  await tabTo(page, page.getByLabel('Email'), 'the email field');
  await page.keyboard.type(email);
  await tabTo(page, page.getByLabel('Password'), 'the password field');
  await page.keyboard.type(fresh);
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/connection$/);
});
