import { test, expect } from '@playwright/test';

test.describe('home page', () => {
  test('renders, hydrates, and answers questions on click', async ({ page }) => {
    const errors: string[] = [];
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
    page.on('pageerror', (err) => errors.push(err.message));

    const response = await page.goto('/');
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Connect your Airwallex account in a minute');

    const question = page.getByRole('button', { name: 'Do you store my Airwallex password?' });
    const answer = page.locator('#faq-answer-1');
    // Once hydrated, answers fold away; only the app's WebAssembly can do that.
    await expect(answer).toBeHidden();
    await expect(question).toHaveAttribute('aria-expanded', 'false');
    await question.click();
    await expect(answer).toBeVisible();
    await expect(answer).toContainText('Never.');
    await expect(question).toHaveAttribute('aria-expanded', 'true');
    await question.click();
    await expect(answer).toBeHidden();

    expect(errors).toEqual([]);
  });

  test('unknown paths get the styled 404 page', async ({ page }) => {
    const response = await page.goto('/no/such/page');
    expect(response?.status()).toBe(404);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('We could not find that page');
    await expect(page.getByRole('link', { name: 'Back to the home page' })).toBeVisible();
  });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the home page renders with every answer shown', async ({ page }) => {
    const response = await page.goto('/');
    expect(response?.status()).toBe(200);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Connect your Airwallex account in a minute');
    for (const index of [0, 1, 2]) {
      await expect(page.locator(`#faq-answer-${index}`)).toBeVisible();
    }
  });
});
