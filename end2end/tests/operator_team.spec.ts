import { expect, test } from '@playwright/test';
import { accessible, base32Decode, enrolled, logInAsOperator, nextCode, SIM, tabTo, totp, uniqueEmail } from './helpers';
import { OPERATOR_EMAIL, OPERATOR_PASSWORD, SMTP_SINK } from '../playwright.config';

type Received = { to: string[]; data: string };

/** The invitation link in the newest message to `email`, decoded from its text part. */
async function invitationLink(email: string): Promise<string> {
  let link = '';
  await expect(async () => {
    const all: Received[] = await (await fetch(`${SMTP_SINK}/messages`)).json();
    const mine = all.filter((m) => m.to.includes(email));
    expect(mine.length).toBeGreaterThan(0);
    const text = mine[mine.length - 1].data.replace(/=\r\n/g, '').replace(/=3D/g, '=');
    const found = text.match(/https?:\/\/[^\s"<>]+\/invitation\/[A-Za-z0-9_-]+/);
    expect(found).not.toBeNull();
    link = found![0];
  }).toPass({ timeout: 15_000 });
  return link;
}

test('an operator confirms a key with a fresh code and invites an operator who enrols, with the keyboard alone', async ({ page }) => {
  // Log in (enrolling the first time), log out, log in again with a code.
  await logInAsOperator(page, OPERATOR_EMAIL, OPERATOR_PASSWORD);
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login/);
  await logInAsOperator(page, OPERATOR_EMAIL, OPERATOR_PASSWORD);

  // Six minutes later (the app shares the simulator's clock), a key needs a fresh code.
  const moved = await fetch(`${SIM}/__sim/clock/advance`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ seconds: 360 }),
  });
  expect(moved.ok).toBe(true);
  await page.goto('/operator/api-keys');
  const name = `reporting ${Date.now()}`;
  await tabTo(page, page.getByLabel('Name'), 'the key name');
  await page.keyboard.type(name);
  await tabTo(page, page.getByLabel(/^connections:read/), 'the connections:read scope');
  await page.keyboard.press('Space');
  await tabTo(page, page.getByRole('button', { name: 'Create key' }), 'Create key');
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: "Confirm it's you" })).toBeVisible();
  await accessible(page, 'the confirmation step');
  // The code field has the focus: type and press Enter.
  await expect(page.getByLabel('Code')).toBeFocused();
  await page.keyboard.type(nextCode(page, OPERATOR_EMAIL));
  await page.keyboard.press('Enter');
  await expect(page.getByRole('textbox', { name: 'The new secret' })).toHaveValue(/^awx_pk_/);
  await expect(page.locator('tr', { hasText: name })).toContainText('connections:read');

  // Invite a second operator from the team page.
  const invitee = uniqueEmail('operator');
  await page.goto('/operator/team');
  await accessible(page, 'the team page');
  await tabTo(page, page.getByLabel('Email'), 'the invitee email');
  await page.keyboard.type(invitee);
  await page.keyboard.press('Enter');
  await expect(page.getByText('Invitation sent')).toBeVisible();
  await expect(page.locator('table', { hasText: 'Open invitations' })).toContainText(invitee);
  await expect(page.locator('[data-security-event="operator_invited"]').first()).toContainText(invitee);

  // The invitee opens the emailed link, chooses a password and enrols.
  const link = await invitationLink(invitee);
  const context = await page.context().browser()!.newContext();
  const other = await context.newPage();
  await other.goto(link);
  await expect(other.getByRole('heading', { name: 'Join the operators' })).toBeVisible();
  await accessible(other, 'the invitation');
  await expect(other.getByLabel(/^Password/)).toBeFocused();
  await other.keyboard.type('another operator pass phrase');
  await other.keyboard.press('Enter');
  await expect(other).toHaveURL(/\/login\/second-factor$/);
  await accessible(other, 'the enrolment of an invitee');
  const secret = (await other.locator('[data-secret]').getAttribute('data-secret'))!;
  const step = Math.floor(Date.now() / 1000 / 30);
  await expect(other.getByLabel('Code', { exact: true })).toBeFocused();
  await other.keyboard.type(totp(base32Decode(secret), step));
  await other.keyboard.press('Enter');
  await expect(other).toHaveURL(/\/login\/recovery-codes$/);
  const recovery = await other.locator('[data-recovery-code]').allTextContents();
  expect(recovery).toHaveLength(10);
  enrolled(other, invitee, secret, step, recovery);
  await tabTo(other, other.getByRole('link', { name: 'Continue' }), 'Continue');
  await other.keyboard.press('Enter');
  await expect(other).toHaveURL(/\/operator$/);
  // The link worked once.
  await other.goto(link);
  await expect(other.getByRole('heading', { name: 'This invitation cannot be used' })).toBeVisible();
  await context.close();

  await page.reload();
  await expect(page.locator('tr[data-operator]', { hasText: invitee })).toContainText('on');
});
