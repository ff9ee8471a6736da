/**
 * The HTTP baselines, each its own process like `domicile serve` (so the load
 * generator never shares their event loop):
 *   ceiling   a bare fastify route with Domicile's path and body schema that
 *             parses the JSON and answers a /query-shaped result (no storage).
 *   postgres  the same route running the scenario's statement through pg
 *             (a pool) against one table keyed by tenant.
 * Run: node --import tsx loadtest/bench/baseline-server.ts MODE PORT [PG_URL]
 * Prints `listening` on stdout once ready; SIGTERM closes it.
 */
import Fastify from 'fastify';
import pg from 'pg';
import { loadScenarioFile } from './scenarios.ts';

const [mode, portArg, pgUrl] = process.argv.slice(2);
if ((mode !== 'ceiling' && mode !== 'postgres') || !portArg || (mode === 'postgres' && !pgUrl)) {
  console.error('usage: baseline-server.ts ceiling|postgres PORT [PG_URL]');
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
const pool = mode === 'postgres' ? new pg.Pool({ connectionString: pgUrl, max: PG_POOL }) : undefined;
let rowid = 0;

app.post<{ Params: { id: string }; Body: { sql: string; params?: unknown[] } }>('/v1/tenants/:id/query', { schema: { body: statement } }, async (request, reply) => {
  if (!request.headers.authorization?.startsWith('Bearer ')) return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'bearer token required' } });
  if (!pool) return { columns: [], columnTypes: [], rows: [], rowsAffected: 1, lastInsertRowid: ++rowid };
  const stmt = bySql.get(request.body.sql);
  if (!stmt) return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: 'not a scenario statement' } });
  const res = await pool.query({ name: stmt.name, text: stmt.text, values: [request.params.id, ...(Array.isArray(request.body.params) ? request.body.params : [])], rowMode: 'array' });
  return { columns: res.fields.map((f) => f.name), columnTypes: [], rows: res.rows, rowsAffected: res.rowCount ?? 0, lastInsertRowid: null };
});

await app.listen({ host: '127.0.0.1', port: Number(portArg) });
process.stdout.write('listening\n');
process.once('SIGTERM', () => {
  void app.close().then(() => pool?.end()).finally(() => process.exit(0));
});
