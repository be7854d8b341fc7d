import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from './chromium';

// The unpacked release artifact (AWX_RELEASE_DIR, made by scripts/release), started from
// another folder with no LEPTOS_SITE_ROOT: the binary must find its site beside itself.
// Playwright hands the web server this process's environment too: a LEPTOS_SITE_ROOT left
// by the debug stage of scripts/test would point the release at the debug site (unhashed
// names, so every /pkg file 404s and nothing hydrates).
delete process.env.LEPTOS_SITE_ROOT;
delete process.env.LEPTOS_HASH_FILES;
const releaseDir = process.env.AWX_RELEASE_DIR;
if (!releaseDir) throw new Error('AWX_RELEASE_DIR must name the unpacked release folder');
const port = Number(process.env.E2E_RELEASE_PORT ?? 3320);
const baseURL = `http://127.0.0.1:${port}`;
const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'awx-release-run-'));

export default defineConfig({
  testDir: './release',
  timeout: 30_000,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: { baseURL, launchOptions: chromium },
  webServer: {
    command: `'${path.join(releaseDir, 'awx-onboard')}' serve`,
    cwd: elsewhere,
    url: `${baseURL}/readyz`,
    reuseExistingServer: false,
    timeout: 60_000,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      DATABASE_URL: `sqlite://${elsewhere}/release.db`,
      TOKEN_ENCRYPTION_KEY_FILE: `${elsewhere}/token.key`,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      PUBLIC_URL: baseURL,
      AIRWALLEX_SIM_ADDR: `127.0.0.1:${port + 1}`,
      RUST_LOG: 'warn',
    },
  },
});
