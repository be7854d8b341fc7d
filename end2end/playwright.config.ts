import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from './chromium';

// One server for the whole run, with its own throwaway SQLite database and key file,
// on ports that do not clash with a developer's `scripts/run`.
const port = Number(process.env.E2E_PORT ?? 3300);
const simPort = port + 1;
const baseURL = `http://127.0.0.1:${port}`;
// The tests' SMTP server: the app sends to port + 2; tests read what arrived on port + 3.
const smtpPort = port + 2;
export const SMTP_SINK = `http://127.0.0.1:${port + 3}`;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'awx-e2e-'));
export const OPERATOR_EMAIL = 'ops@example.com';
// What the operators' phones hold (keys, last codes, recovery codes), kept for the whole
// run: a worker that restarts after a failed test still knows them.
// (The main process names it; workers, which load this file again, inherit the name.)
process.env.E2E_FACTORS_FILE ??= path.join(dataDir, 'factors.json');
export const FACTORS_FILE = process.env.E2E_FACTORS_FILE;
export const OPERATOR_PASSWORD = 'operator pass phrase 2026';
// The platform that embeds awx-onboard (platform-server.mjs), and the key it holds.
export const PLATFORM_URL = `http://127.0.0.1:${port + 4}`;
const platformKey = path.join(dataDir, 'platform.key');
const bin = process.env.AWX_BIN ?? path.resolve(__dirname, '../target/debug/awx-onboard');

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 5_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL,
    trace: 'retain-on-failure',
    launchOptions: chromium,
  },
  webServer: [{
    command: `node smtp-sink.mjs ${smtpPort} ${port + 3}`,
    cwd: __dirname,
    url: `${SMTP_SINK}/healthz`,
    reuseExistingServer: false,
    timeout: 10_000,
  }, {
    // A fresh database with one operator and the platform's key, then the server.
    command: `sh -c "printf '%s\\n' '${OPERATOR_PASSWORD}' | '${bin}' create-operator --email ${OPERATOR_EMAIL} && ` +
      `'${bin}' create-api-key --name platform --scope connect:write --scope connections:read --scope tokens:read --scope airwallex:proxy ` +
      `| tail -n 1 > '${platformKey}' && exec '${bin}' serve"`,
    cwd: path.resolve(__dirname, '..'),
    url: `${baseURL}/readyz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      DATABASE_URL: `sqlite://${dataDir}/e2e.db`,
      TOKEN_ENCRYPTION_KEY_FILE: `${dataDir}/token.key`,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      PUBLIC_URL: baseURL,
      AIRWALLEX_SIM_ADDR: `127.0.0.1:${simPort}`,
      LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? path.resolve(__dirname, '../target/site'),
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      // Every test signs up from 127.0.0.1; production keeps the default of 10 an hour.
      SIGN_UPS_PER_ADDRESS_PER_HOUR: '1000',
      SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
      MAIL_FROM: 'awx-onboard <no-reply@onboard.test>',
      PLATFORM_NAME: 'Acme Platform',
      PLATFORM_RETURN_ORIGINS: PLATFORM_URL,
    },
  }, {
    command: `node platform-server.mjs ${port + 4} ${baseURL} '${platformKey}'`,
    cwd: __dirname,
    url: `${PLATFORM_URL}/healthz`,
    reuseExistingServer: false,
    timeout: 10_000,
  }],
});
