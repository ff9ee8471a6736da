/**
 * The HTTP baselines, each its own process like `domicile serve` (so the load
 * generator never shares their event loop):
 *   ceiling   a bare fastify route with Domicile's path and body schema that
 *             parses the JSON and answers a /query-shaped result (no storage).
 *   postgres  the same route running the scenario's statement through pg
 *             (a pool) against one table keyed by tenant.
 *   sqlite    the same route running the scenario's statement with
 *             better-sqlite3 on the event loop, one file per tenant under DIR
 *             (raw-sqlite.ts: the shards' pragmas, statements prepared once),
 *             the files of the scenario's first TENANTS tenants created and
 *             opened before `listening` (as Domicile's are, by the setup).
 *             No replication, statement guard, token check, directory or
 *             worker threads: what any design that answers over HTTP from one
 *             SQLite file per tenant can at best do on this machine.
 * Run: node --import tsx loadtest/bench/baseline-server.ts MODE PORT [PG_URL | DIR TENANTS]
 * Prints `listening` on stdout once ready; SIGTERM closes it.
 */
import Fastify from 'fastify';
import pg from 'pg';
import { RawShards } from './raw-sqlite.ts';
import { loadScenarioFile, tenantIds } from './scenarios.ts';

const [mode, portArg, extra, tenantsArg] = process.argv.slice(2);
if ((mode !== 'ceiling' && mode !== 'postgres' && mode !== 'sqlite') || !portArg || (mode !== 'ceiling' && !extra)) {
  console.error('usage: baseline-server.ts ceiling PORT | postgres PORT PG_URL | sqlite PORT DIR [TENANTS]');
  process.exit(2);
}

/** pg pool size: enough to keep 2 cores busy without one backend per load connection. */
const PG_POOL = 16;

const file = loadScenarioFile();
// The peer runs the Postgres form of whichever scenario statement the body carries; anything else is refused.
const bySql = new Map(Object.entries(file.operations).map(([name, op]) => [op.sql, { name, text: op.postgres }]));

// Domicile's body schema for /query (services/router/src/routes/data-routes.ts), so both validate the same JSON.
const statement = {
  type: 'object',
  required: ['sql'],
  additionalProperties: false,
  properties: { sql: { type: 'string', minLength: 1 }, params: { type: ['array', 'object'] } },
} as const;

const app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024 });
const pool = mode === 'postgres' ? new pg.Pool({ connectionString: extra, max: PG_POOL }) : undefined;
const shards = mode === 'sqlite' ? new RawShards(file, extra!) : undefined;
shards?.open(tenantIds(file, Number(tenantsArg ?? 0)));
let rowid = 0;

app.post<{ Params: { id: string }; Body: { sql: string; params?: unknown[] } }>('/v1/tenants/:id/query', { schema: { body: statement } }, async (request, reply) => {
  if (!request.headers.authorization?.startsWith('Bearer ')) return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'bearer token required' } });
  if (shards) {
    if (!bySql.has(request.body.sql)) return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: 'not a scenario statement' } });
    const res = shards.execute(request.params.id, request.body.sql, Array.isArray(request.body.params) ? request.body.params : []);
    return { columns: [], columnTypes: [], rows: res.rows, rowsAffected: res.rowsAffected, lastInsertRowid: res.lastInsertRowid === null ? null : Number(res.lastInsertRowid) };
  }
  if (!pool) return { columns: [], columnTypes: [], rows: [], rowsAffected: 1, lastInsertRowid: ++rowid };
  const stmt = bySql.get(request.body.sql);
  if (!stmt) return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: 'not a scenario statement' } });
  const res = await pool.query({ name: stmt.name, text: stmt.text, values: [request.params.id, ...(Array.isArray(request.body.params) ? request.body.params : [])], rowMode: 'array' });
  return { columns: res.fields.map((f) => f.name), columnTypes: [], rows: res.rows, rowsAffected: res.rowCount ?? 0, lastInsertRowid: null };
});

await app.listen({ host: '127.0.0.1', port: Number(portArg) });
process.stdout.write('listening\n');
process.once('SIGTERM', () => {
  void app.close().then(() => pool?.end()).then(() => shards?.close()).finally(() => process.exit(0));
});
