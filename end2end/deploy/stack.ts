// The deployment under test: nginx terminating TLS (a throw-away self-signed certificate)
// in front of two awx-onboard instances on PostgreSQL, and the Airwallex simulator on its
// own. Started by setup.ts, stopped by teardown.ts; the specs restart instances.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';

export const repo = path.resolve(__dirname, '../..');
export const stateFile = path.join(os.tmpdir(), `awx-deploy-${process.env.E2E_DEPLOY_PORT ?? 3340}.json`);
export const bin = process.env.AWX_BIN ?? path.join(repo, 'target/debug/awx-onboard');
export const OPERATOR = { email: 'ops@example.com', password: 'operator pass phrase 2026' };

export interface Stack {
  skip?: string;
  dir: string;
  /** base64 SHA-256 of the throw-away certificate's public key: the one certificate trusted. */
  spki?: string;
  https: number;
  sim: number;
  apps: number[];
  database: string;
  adminUrl: string;
  pids: Record<string, number>;
}

export function readStack(): Stack {
  return JSON.parse(fs.readFileSync(stateFile, 'utf8'));
}

export function writeStack(stack: Stack) {
  fs.writeFileSync(stateFile, JSON.stringify(stack, null, 2));
}

export function baseUrl(stack: Stack): string {
  return `https://127.0.0.1:${stack.https}`;
}

/** The environment of instance `n` (0 or 1), as server/deploy/awx-onboard.env.example shapes it. */
export function instanceEnv(stack: Stack, n: number): NodeJS.ProcessEnv {
  const db = new URL(stack.adminUrl);
  db.pathname = `/${stack.database}`;
  return {
    PATH: process.env.PATH,
    PUBLIC_URL: baseUrl(stack),
    LEPTOS_SITE_ADDR: `127.0.0.1:${stack.apps[n]}`,
    LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? path.join(repo, 'target/site'),
    DATABASE_URL: db.toString(),
    AIRWALLEX_ENV: 'sim',
    AIRWALLEX_AUTHORIZE_URL: `http://127.0.0.1:${stack.sim}/oauth/authorize`,
    AIRWALLEX_API_URL: `http://127.0.0.1:${stack.sim}`,
    AIRWALLEX_WEBHOOK_SECRET: 'awx_sim_webhook_secret',
    TOKEN_ENCRYPTION_KEY: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=',
    TRUSTED_PROXIES: '127.0.0.1/32',
    DRAIN_SECONDS: '1',
    // Browsers of every test come through nginx from 127.0.0.1.
    SIGN_UPS_PER_ADDRESS_PER_HOUR: '1000',
    RUST_LOG: 'warn',
  };
}

function logFile(stack: Stack, name: string): number {
  return fs.openSync(path.join(stack.dir, `${name}.log`), 'a');
}

export function startProcess(stack: Stack, name: string, command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const log = logFile(stack, name);
  const child = spawn(command, args, { env, stdio: ['ignore', log, log], detached: true });
  child.unref();
  stack.pids[name] = child.pid!;
  writeStack(stack);
  return child;
}

export function startInstance(stack: Stack, n: number): ChildProcess {
  return startProcess(stack, `app${n}`, bin, ['serve'], instanceEnv(stack, n));
}

export async function waitFor(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const get = url.startsWith('https:')
        ? (u: string, cb: (r: http.IncomingMessage) => void) => https.get(u, { rejectUnauthorized: false }, cb)
        : http.get;
      const request = get(url, (response: http.IncomingMessage) => {
        response.resume();
        resolve(response.statusCode === 200);
      });
      request.on('error', () => resolve(false));
      request.setTimeout(1000, () => {
        request.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become ready`);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then wait for the process to end. */
export async function stopProcess(pid: number, timeoutMs = 40_000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** The repository's nginx example, with this test's ports and certificate. */
export function renderNginx(stack: Stack, http: number): string {
  const example = fs.readFileSync(path.join(repo, 'server/deploy/nginx.conf'), 'utf8');
  const site = example
    .replace('server 127.0.0.1:3000 ', `server 127.0.0.1:${stack.apps[0]} `)
    .replace('server 127.0.0.1:3001 ', `server 127.0.0.1:${stack.apps[1]} `)
    .replace(/listen \[::\]:\d+[^;]*;\n/g, '')
    .replace('listen 80;', `listen 127.0.0.1:${http};`)
    .replace('listen 443 ssl http2;', `listen 127.0.0.1:${stack.https} ssl http2;`)
    .replace(/ssl_certificate\s+\S+;/, `ssl_certificate ${stack.dir}/cert.pem;`)
    .replace(/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${stack.dir}/key.pem;`);
  for (const port of [stack.apps[0], stack.apps[1], stack.https]) {
    if (!site.includes(`:${port}`)) throw new Error(`the nginx example no longer has the line for port ${port}`);
  }
  fs.writeFileSync(path.join(stack.dir, 'awx-onboard.conf'), site);
  const temp = (name: string) => path.join(stack.dir, name);
  return `user root;
worker_processes 1;
pid ${temp('nginx.pid')};
error_log ${temp('nginx-error.log')} warn;
events { worker_connections 1024; }
http {
  access_log ${temp('nginx-access.log')};
  client_body_temp_path ${temp('body')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};
  include ${temp('awx-onboard.conf')};
}
`;
}

export function nginxMissing(): string | undefined {
  for (const [tool, args] of [['/usr/sbin/nginx', ['-v']], ['openssl', ['version']]] as const) {
    try {
      execFileSync(tool, [...args], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed here (scripts/setup --test installs Debian's nginx and openssl)`;
    }
  }
  return undefined;
}
