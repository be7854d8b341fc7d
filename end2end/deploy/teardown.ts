import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { readStack, stateFile, stopProcess } from './stack';

export default async function teardown() {
  if (!fs.existsSync(stateFile)) return;
  const stack = readStack();
  await Promise.all(Object.values(stack.pids).map((pid) => stopProcess(pid, 30_000)));
  if (!stack.skip) {
    try {
      execFileSync('psql', [stack.adminUrl, '-qc', `DROP DATABASE IF EXISTS ${stack.database} WITH (FORCE)`], {
        stdio: 'ignore',
      });
    } catch {
      // Dropped by scripts/test's clean-up of leftovers otherwise.
    }
  }
  fs.rmSync(stateFile, { force: true });
  if (!process.env.E2E_KEEP_LOGS) fs.rmSync(stack.dir, { recursive: true, force: true });
}
