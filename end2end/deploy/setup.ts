import * as crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  bin, nginxMissing, OPERATOR, renderNginx, Stack, startInstance, startProcess, waitFor, writeStack, instanceEnv,
} from './stack';

export default async function setup() {
  const base = Number(process.env.E2E_DEPLOY_PORT ?? 3340);
  const stack: Stack = {
    dir: fs.mkdtempSync(path.join(os.tmpdir(), 'awx-deploy-')),
    https: base,
    sim: base + 1,
    apps: [base + 2, base + 3],
    database: `awx_e2e_deploy_${Date.now()}`,
    adminUrl: process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    pids: {},
  };
  const missing = nginxMissing();
  if (missing) {
    // scripts/test installs nginx first: there, a missing nginx is a failure, never a skip.
    if (process.env.AWX_REQUIRE_NGINX) throw new Error(`[deploy] ${missing}`);
    stack.skip = missing;
    writeStack(stack);
    console.log(`[deploy] SKIPPED: ${missing}`);
    return;
  }
  writeStack(stack);

  // A throw-away certificate for 127.0.0.1.
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', path.join(stack.dir, 'key.pem'), '-out', path.join(stack.dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  // Chromium trusts exactly this certificate (by its public key), and nothing else.
  const publicKey = execFileSync('openssl', ['x509', '-in', path.join(stack.dir, 'cert.pem'), '-pubkey', '-noout']);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: publicKey });
  stack.spki = crypto.createHash('sha256').update(der).digest('base64');
  writeStack(stack);

  // The instances' database on the local PostgreSQL, with one operator.
  execFileSync('psql', [stack.adminUrl, '-qc', `CREATE DATABASE ${stack.database}`], { stdio: 'inherit' });
  execFileSync(bin, ['create-operator', '--email', OPERATOR.email], {
    env: instanceEnv(stack, 0),
    input: `${OPERATOR.password}\n`,
    stdio: ['pipe', 'ignore', 'inherit'],
  });

  // Airwallex: the simulator alone, with the https redirect URI registered.
  startProcess(stack, 'sim', bin, [
    'sim', '--addr', `127.0.0.1:${stack.sim}`,
    '--redirect-uri', `https://127.0.0.1:${stack.https}/oauth/callback`,
    '--webhook-url', `http://127.0.0.1:${stack.apps[0]}/webhooks/airwallex`,
  ], { PATH: process.env.PATH, RUST_LOG: 'warn' });
  await waitFor(`http://127.0.0.1:${stack.sim}/__sim/counters`);

  startInstance(stack, 0);
  startInstance(stack, 1);
  await Promise.all(stack.apps.map((port) => waitFor(`http://127.0.0.1:${port}/readyz`)));

  fs.writeFileSync(path.join(stack.dir, 'nginx.conf'), renderNginx(stack, base + 4));
  execFileSync('/usr/sbin/nginx', ['-t', '-c', path.join(stack.dir, 'nginx.conf')], { stdio: 'ignore' });
  startProcess(stack, 'nginx', '/usr/sbin/nginx', ['-c', path.join(stack.dir, 'nginx.conf'), '-g', 'daemon off;'], {
    PATH: process.env.PATH,
  });
  // Ready through the proxy (the certificate itself is checked by the tests).
  await waitFor(`https://127.0.0.1:${stack.https}/readyz`, 30_000);
}
