/**
 * Cluster benchmark (issue 5), on loopback, all parts real: one redis-server,
 * one s3rver per region, `domicile serve` node processes.
 *
 * 1. Proxy versus direct: one tenant owned by north-1; the same small query
 *    sent sequentially (keep-alive) straight to the owner and through south-1,
 *    which relays it (the residency allows transit), interleaved in rounds so
 *    both see the same machine state. Reports p50/p99 and the ratio.
 * 2. Failover: three nodes in `north`. Each round creates a sync tenant
 *    (placed on one of the live nodes), writes to it, SIGKILLs its owner and
 *    polls through another node of the region until the tenant answers with
 *    every acknowledged write; the time from the kill to that answer is the
 *    failover time (lease expiry + detection + restore from the bucket). The
 *    killed node is restarted before the next round.
 *
 * Not a test. Run: pnpm bench:cluster [--quick] [--kills N] [--requests N] [--ttl MS] [--no-append]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  startDomicile, startRedisServer, startS3Server, S3RVER_CREDENTIALS, type DomicileServer, type RedisServer, type S3Server,
} from '@domicile/testkit';
import { machineLine, pct, publishResults } from './bench/report.ts';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const arg = (name: string, def: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : def);
const KILLS = arg('--kills', QUICK ? 2 : 10);
const REQUESTS = arg('--requests', QUICK ? 400 : 4000);
const TTL = arg('--ttl', 5000);
const WRITES = 50;
const APPEND = !args.includes('--no-append') && !QUICK;
const ADMIN = 'cluster-bench-admin-token-0123456789';
const POLICY = `version: 1
regions:
  north: { jurisdiction: xx }
  south: { jurisdiction: xx }
residencies:
  n:
    regions: [north]
`;

const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : 0)} ms`;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'domicile-cluster-bench-'));
  const policyPath = path.join(dir, 'placement.yaml');
  writeFileSync(policyPath, POLICY);
  let redis: RedisServer | undefined;
  const s3 = new Map<string, S3Server>();
  const nodes = new Map<string, DomicileServer>();
  try {
    redis = await startRedisServer();
    for (const region of ['north', 'south']) s3.set(region, await startS3Server({ buckets: [region] }));
    const start = async (id: string, region: string) => {
      nodes.set(id, await startDomicile({
        dataDir: path.join(dir, id),
        env: {
          DOMICILE_POLICY: policyPath, DOMICILE_REDIS_URL: redis!.url, DOMICILE_REGION: region, DOMICILE_NODE_ID: id,
          DOMICILE_ADMIN_TOKEN: ADMIN, DOMICILE_TOKEN_SECRET: 'k1:cluster-bench-token-secret-0123456789', DOMICILE_CLUSTER_SECRET: 'cluster-bench-secret-0123456789',
          DOMICILE_LEASE_TTL_MS: String(TTL), DOMICILE_LOG_LEVEL: 'warn',
          DOMICILE_BUCKETS: `${region}=${s3.get(region)!.bucketUrl(region, 'domicile')}`,
          AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        },
      }));
    };
    for (const [id, region] of [['north-1', 'north'], ['north-2', 'north'], ['north-3', 'north'], ['south-1', 'south']] as const) await start(id, region);
    const call = async (id: string, method: string, route: string, body?: unknown) => {
      const res = await fetch(`${nodes.get(id)!.url}${route}`, {
        method, headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
    };

    // 1. Proxy versus direct.
    const created = await call('south-1', 'POST', '/v1/tenants', { id: 'latency-co', residency: 'n' });
    if (created.status !== 201) throw new Error(`create: ${JSON.stringify(created.body)}`);
    const owner = created.body.node as string;
    await call(owner, 'POST', '/v1/tenants/latency-co/query', { sql: 'CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)' });
    await call(owner, 'POST', '/v1/tenants/latency-co/query', { sql: "INSERT INTO kv VALUES (1, 'x')" });
    const direct: number[] = [];
    const proxied: number[] = [];
    const once = async (via: string, into: number[]) => {
      const t = performance.now();
      const r = await call(via, 'POST', '/v1/tenants/latency-co/query', { sql: 'SELECT v FROM kv WHERE k = 1' });
      if (r.status !== 200) throw new Error(`query via ${via}: ${r.status}`);
      into.push(performance.now() - t);
    };
    for (let i = 0; i < 200; i++) { await once(owner, []); await once('south-1', []); } // warm-up
    for (let round = 0; round < REQUESTS / 100; round++) {
      for (let i = 0; i < 50; i++) await once(owner, direct);
      for (let i = 0; i < 50; i++) await once('south-1', proxied);
    }

    // 2. Failover.
    const failovers: number[] = [];
    const epochs: number[] = [];
    const restores: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const id = `failover-${k}`;
      const c = await call('south-1', 'POST', '/v1/tenants', { id, residency: 'n', durability: 'sync' });
      if (c.status !== 201) throw new Error(`create ${id}: ${JSON.stringify(c.body)}`);
      const victim = c.body.node as string;
      await call(victim, 'POST', `/v1/tenants/${id}/query`, { sql: 'CREATE TABLE w (n INTEGER PRIMARY KEY)' });
      for (let n = 0; n < WRITES; n++) {
        const r = await call(victim, 'POST', `/v1/tenants/${id}/query`, { sql: 'INSERT INTO w VALUES (?)', params: [n] });
        if (r.status !== 200) throw new Error(`write ${n}: ${r.status}`);
      }
      const peer = ['north-1', 'north-2', 'north-3'].find((n) => n !== victim)!;
      await nodes.get(victim)!.kill();
      const killedAt = performance.now();
      for (;;) {
        const r = await call(peer, 'POST', `/v1/tenants/${id}/query`, { sql: 'SELECT count(*) FROM w' });
        if (r.status === 200) {
          if (r.body.rows[0][0] !== WRITES) throw new Error(`${id}: ${r.body.rows[0][0]} of ${WRITES} acknowledged writes after the failover`);
          break;
        }
        if (performance.now() - killedAt > 60_000) throw new Error(`${id} not served 60 s after the kill (last: ${r.status} ${JSON.stringify(r.body)})`);
        await new Promise((res) => setTimeout(res, 50));
      }
      failovers.push(performance.now() - killedAt);
      const rec = (await call(peer, 'GET', `/v1/tenants/${id}`)).body;
      epochs.push(rec.epoch);
      // The new owner's audit log says how long the restore from the bucket took.
      const events = (await call(rec.node, 'GET', `/v1/audit?tenant=${id}`)).body.events as Array<{ action: string; details: { restoreMs?: number } }>;
      restores.push(events.find((e) => e.action === 'tenant.failover')?.details.restoreMs ?? NaN);
      process.stderr.write(`kill ${k + 1}/${KILLS}: ${victim} → served again after ${ms(failovers.at(-1)!)}\n`);
      await nodes.get(victim)!.restart();
    }

    const machine = machineLine();
    const ratio = pct(proxied, 50) / pct(direct, 50);
    const md = [
      '',
      `## Cluster: relay versus direct, failover time (\`pnpm bench:cluster\`), ${new Date().toISOString().slice(0, 10)}`,
      '',
      `Command: \`pnpm bench:cluster${args.length ? ` ${args.join(' ')}` : ''}\``,
      '',
      `Machine: ${machine}. Four \`domicile serve\` processes (north-1..3, south-1), one redis-server, one s3rver per region, all on loopback; lease TTL ${TTL} ms.`,
      '',
      `Relay: ${direct.length} sequential one-row reads straight to the owner and ${proxied.length} through a node of the other region, interleaved in rounds of 50.`,
      '',
      '| path | p50 | p99 |',
      '|---|---|---|',
      `| direct to the owner | ${ms(pct(direct, 50))} | ${ms(pct(direct, 99))} |`,
      `| relayed by another node | ${ms(pct(proxied, 50))} | ${ms(pct(proxied, 99))} |`,
      '',
      `Ratio relayed / direct: **${ratio.toFixed(2)}×** at p50 (${(pct(proxied, 99) / pct(direct, 99)).toFixed(2)}× at p99).`,
      '',
      `Failover: ${KILLS} rounds of a sync tenant with ${WRITES} acknowledged writes, its owner SIGKILLed, polled every 50 ms through a peer of its region until it answered with all ${WRITES} writes (it always did; epochs after: ${[...new Set(epochs)].join(', ')}).`,
      '',
      '| measure | p50 | p99 | max |',
      '|---|---|---|---|',
      `| kill → served by the peer | ${ms(pct(failovers, 50))} | ${ms(pct(failovers, 99))} | ${ms(Math.max(...failovers))} |`,
      `| of which: claim → restored (the new owner's \`restoreMs\`) | ${ms(pct(restores, 50))} | ${ms(pct(restores, 99))} | ${ms(Math.max(...restores))} |`,
      '',
      `Goal detection to serving ≤ 10 s: **${Math.max(...failovers) <= 10_000 ? 'met' : 'not met'}** (worst ${ms(Math.max(...failovers))}; the lease TTL alone is ${TTL} ms of it).`,
      '',
    ].join('\n');
    publishResults(md, APPEND);
  } finally {
    for (const n of nodes.values()) await n.dispose().catch(() => undefined);
    for (const s of s3.values()) await s.stop().catch(() => undefined);
    await redis?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
