import { defineConfig } from '@playwright/test';
import { chromium } from './chromium';

// The deployment of server/deploy/: nginx with TLS in front of two instances on
// PostgreSQL (see deploy/stack.ts), driven through https://.
const port = Number(process.env.E2E_DEPLOY_PORT ?? 3340);
process.env.E2E_SIM_URL = `http://127.0.0.1:${port + 1}`;

export default defineConfig({
  testDir: './deploy',
  timeout: 120_000,
  expect: { timeout: 10_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  globalSetup: './deploy/setup.ts',
  globalTeardown: './deploy/teardown.ts',
  use: {
    baseURL: `https://127.0.0.1:${port}`,
    // The certificate is checked: deploy.spec.ts trusts the test's own certificate alone.
    ignoreHTTPSErrors: false,
    trace: 'retain-on-failure',
    launchOptions: chromium,
  },
});
