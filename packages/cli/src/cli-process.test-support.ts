/**
 * Tests: run the real `domicile` bin as a user would, against a running
 * `domicile serve` (its URL and admin token in the environment; any other
 * DOMICILE_* variable of the test process left out).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DomicileServer } from '@domicile/testkit';

const BIN = fileURLToPath(new URL('../bin/domicile.js', import.meta.url));

/** Runs `domicile ...args` against `s`; resolves with its exit code and output. */
export function runCli(s: DomicileServer, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOMICILE_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...clean, DOMICILE_URL: s.url, DOMICILE_ADMIN_TOKEN: s.adminToken }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}
