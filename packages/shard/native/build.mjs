#!/usr/bin/env node
// Compiles the statement guard extension (guard.c) against the SQLite headers
// that better-sqlite3 ships, so the extension and the library agree on the API.
// Run by the root `postinstall`; skips the compile when the output is newer than
// its inputs. Plain Node, no dependencies.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const shardDir = dirname(here);
const source = join(here, 'guard.c');
const outDir = join(here, 'build');
const output = join(outDir, 'domicile_guard.so');

function fail(message) {
  console.error(`domicile guard: ${message}`);
  process.exit(1);
}

// Resolve from inside packages/shard: the workspace root need not depend on better-sqlite3.
let pkgJson;
try {
  pkgJson = createRequire(join(shardDir, 'package.json')).resolve('better-sqlite3/package.json');
} catch (err) {
  fail(`cannot find better-sqlite3 from ${shardDir} (${err.message}); run pnpm install first`);
}
const headers = join(dirname(pkgJson), 'deps', 'sqlite3');
for (const h of ['sqlite3.h', 'sqlite3ext.h']) {
  if (!existsSync(join(headers, h))) fail(`missing ${join(headers, h)}`);
}

const mtime = (p) => statSync(p).mtimeMs;
const inputs = [source, fileURLToPath(import.meta.url), join(headers, 'sqlite3.h'), join(headers, 'sqlite3ext.h')];
if (existsSync(output) && inputs.every((p) => mtime(p) <= mtime(output))) {
  console.log(`domicile guard: up to date (${relative(process.cwd(), output) || output})`);
  process.exit(0);
}

mkdirSync(outDir, { recursive: true });
const cc = process.env.CC || 'cc';
const args = ['-O2', '-fPIC', '-shared', '-pthread', '-Wall', `-I${headers}`, source, '-o', output];
if (process.platform === 'darwin') args.splice(3, 0, '-undefined', 'dynamic_lookup');
const r = spawnSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
if (r.error) fail(`cannot run ${cc} (${r.error.message}); a C compiler is needed to build the statement guard`);
if (r.status !== 0) fail(`${cc} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
console.log(`domicile guard: built ${relative(process.cwd(), output) || output}`);
