/**
 * Starting a shard worker thread. From TypeScript sources the worker must load
 * through tsx; measured on Node 20.20: `execArgv: ['--import', tsx]` does not
 * register tsx's hooks inside a worker (tsx registers only on the main thread,
 * "Unknown file extension .ts"), neither does inheriting `node --import tsx`.
 * So the worker starts from a two-line bootstrap that registers tsx's ESM API
 * in the worker, then imports `shard-worker.ts`. Compiled `.js` needs none of it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerInit } from './protocol.ts';

const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './shard-worker.ts' : './shard-worker.js', import.meta.url);

let tsxApiUrl: string | undefined;

/** File URL of tsx's ESM `register()` API, resolved from this package through tsx's export map. */
export function resolveTsxEsmApi(): string {
  if (tsxApiUrl) return tsxApiUrl;
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import?: { default?: string } }> };
  const rel = pkg.exports['./esm/api']?.import?.default;
  if (!rel) throw new Error('tsx does not export ./esm/api');
  tsxApiUrl = pathToFileURL(join(dirname(pkgPath), rel)).href;
  return tsxApiUrl;
}

/** Start one shard worker thread. */
export function spawnShardWorker(init: WorkerInit): Worker {
  const options = { workerData: init, name: `domicile-shard-${init.index}` };
  if (!ENTRY.pathname.endsWith('.ts')) return new Worker(ENTRY, options);
  const bootstrap = `import(${JSON.stringify(resolveTsxEsmApi())})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(ENTRY.href)}); })
  .catch((err) => { setImmediate(() => { throw err; }); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
