// Moves (DESIGN §9, docs/moves.md) on the embedded default: a ≥ 20 MB tenant
// moves between regions under four concurrent HTTP writers with zero failed
// requests and every acknowledged write present; the old region's bucket is
// purged, the new one holds the new epoch's generation; policy refusals
// change nothing; a failure injected at every phase before the switch leaves
// the tenant serving at the source with no debris in the target region; the
// node-to-node routes take only the cluster credential.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '@domicile/object-store';
import { generationsPrefix, listGenerations, restore, tenantPrefix } from '@domicile/replication';
import { dumpDatabase } from '@domicile/replication/testing';
import { shardPath } from '@domicile/shard';
import { testApp, type TestApp } from './harness.ts';

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(prefix)) out.push(e.key);
  return out;
}

/** Every file under a region's shard dir that belongs to `tenant` (shard, companions, partial copies). */
function tenantFiles(t: TestApp, region: string, tenant: string): string[] {
  const dir = path.dirname(shardPath(t.rt.nodeForRegion(region)!.dir, tenant));
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.startsWith(`${tenant}.db`));
}

describe('moving a tenant between regions (embedded default)', () => {
  let t: TestApp;
  let base: string;
  const http = async (method: string, route: string, body?: unknown, token = 'test-admin-token-0123456789') => {
    const res = await fetch(`${base}${route}`, {
      method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: any = text;
    try { parsed = JSON.parse(text); } catch { /* text */ }
    return { status: res.status, body: parsed };
  };
  const q = (tenant: string, sql: string, params?: unknown[]) => t.req('POST', `/v1/tenants/${tenant}/query`, params ? { sql, params } : { sql });

  beforeAll(async () => {
    t = await testApp();
    base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  }, 30_000);
  afterAll(async () => t?.close());

  it('moves a 20 MB tenant under four concurrent writers: no failed request, every acknowledged write kept, epoch + 1, old bucket purged, audit event', async () => {
    const id = 'big-co';
    expect((await t.req('POST', '/v1/tenants', { id, residency: 'mars', region: 'mars-north' })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)')).status).toBe(200);
    expect((await q(id, 'CREATE TABLE w (writer INTEGER, n INTEGER, PRIMARY KEY (writer, n))')).status).toBe(200);
    for (let i = 0; i < 4; i++) {
      const r = await q(id, 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1300) INSERT INTO big (b) SELECT randomblob(4000) FROM c');
      expect(r.status).toBe(200);
    }
    const before = (await t.rt.directory.get(id))!;
    const srcPath = t.rt.shardRef(before).path;
    expect(statSync(srcPath).size + (existsSync(`${srcPath}-wal`) ? statSync(`${srcPath}-wal`).size : 0)).toBeGreaterThan(20 * 1024 * 1024);
    expect(await t.rt.replicator!.flush(20_000)).toBe(true);
    const oldBucket = t.rt.bucketFor('mars-north')!;
    const newBucket = t.rt.bucketFor('mars-south')!;
    expect((await keys(oldBucket, generationsPrefix(id, before.incarnation))).length).toBeGreaterThan(0);

    let stop = false;
    const acked: Array<[number, number]> = [];
    const failed: unknown[] = [];
    const writer = async (w: number) => {
      for (let n = 0; !stop; n++) {
        try {
          const r = await http('POST', `/v1/tenants/${id}/query`, { sql: 'INSERT INTO w (writer, n) VALUES (?, ?)', params: [w, n] });
          if (r.status === 200) acked.push([w, n]);
          else failed.push(r.body);
        } catch (err) {
          failed.push(String(err));
        }
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await new Promise((r) => setTimeout(r, 200));
    const moved = await http('POST', `/v1/tenants/${id}/move?wait=1`, { to: 'mars-south' });
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await Promise.all(writers);

    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ tenant: id, from: 'mars-north', to: 'mars-south', node: 'mars-south-1', phase: 'done', epoch: { from: 1, to: 2 } });
    expect(moved.body.bytesCopied).toBeGreaterThan(20 * 1024 * 1024);
    expect(moved.body.writePauseMs).toBeGreaterThanOrEqual(0);
    expect(moved.body.purgedObjects).toBeGreaterThan(0);
    expect(failed).toEqual([]);
    expect(acked.length).toBeGreaterThan(20);

    const after = (await t.rt.directory.get(id))!;
    expect(after).toMatchObject({ region: 'mars-south', node: 'mars-south-1', epoch: 2, state: 'active', incarnation: before.incarnation });
    const rows = (await q(id, 'SELECT writer, n FROM w')).body.rows as Array<[number, number]>;
    const present = new Set(rows.map(([w, n]) => `${w}:${n}`));
    for (const [w, n] of acked) expect(present.has(`${w}:${n}`)).toBe(true);
    expect((await q(id, 'SELECT count(*) FROM big')).body.rows).toEqual([[5200]]);
    expect(tenantFiles(t, 'mars-north', id)).toEqual([]);
    expect(existsSync(t.rt.shardRef(after).path)).toBe(true);

    // The old region's bucket holds nothing of the tenant; the new one its epoch-2 generation.
    expect(await keys(oldBucket, tenantPrefix(id))).toEqual([]);
    // One generation there: the move's pending generation, uploaded before the fence (its snapshot
    // is the warm copy), which the new primary's replicator resumed instead of beginning another.
    expect(await t.rt.replicator!.flush(20_000)).toBe(true);
    const gens = await listGenerations(newBucket, id, before.incarnation);
    expect(gens).toHaveLength(1);
    expect(gens[0]).toMatchObject({ epoch: 2 });
    expect(gens[0]!.snapshots).toHaveLength(1);
    const rep = t.rt.replicator!.status(id)!;
    expect(rep.replicatedTxid).toBe(rep.lastTxid);
    expect(gens[0]!.lastTxid).toBe(rep.lastTxid);
    // Its snapshot predates the epoch stamp (taken before the fence): restored, it says epoch 1.
    const ref = { tenant: id, incarnation: before.incarnation, epoch: 2, generation: gens[0]!.generation };
    const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-move-test-'));
    try {
      await restore({ store: newBucket, ref, target: { txid: gens[0]!.firstTxid }, outPath: path.join(scratch, 'at-snapshot.db') });
      expect(dumpDatabase(path.join(scratch, 'at-snapshot.db'))['_domicile_meta']![0]).toEqual([id, before.incarnation, 1, gens[0]!.firstTxid]);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }

    const audit = await t.req('GET', `/v1/audit?tenant=${id}`);
    const ev = audit.body.events.find((e: any) => e.action === 'tenant.move');
    expect(ev).toMatchObject({ actor: 'alice', tenant: id, details: { from: 'mars-north', to: 'mars-south', oldEpoch: 1, newEpoch: 2 } });
    expect(ev.details.bytes).toBe(moved.body.bytesCopied);
    expect(ev.details.writePauseMs).toBe(moved.body.writePauseMs);

    const status = await t.req('GET', `/v1/moves/${moved.body.moveId}`);
    expect(status.body.phase).toBe('done');
    const metrics = await t.req('GET', '/metrics', undefined, null);
    expect(String(metrics.body)).toMatch(/domicile_move_write_pause_seconds_count 1\b/);

    // And the residency audit sees it only where it is.
    const res = await t.req('GET', '/v1/audit/residency');
    const line = res.body.tenants.find((l: any) => l.tenant === id);
    expect(Object.keys(line.byRegion)).toEqual(['mars-south']);
    expect(line.byRegion['mars-south'].fileBytes).toBeGreaterThan(20 * 1024 * 1024);
    expect(res.body.violations).toEqual([]);
  }, 60_000);

  it('a sync tenant: every write acknowledged before, during and after the move is in the new region\'s bucket alone', async () => {
    const id = 'sync-co';
    expect((await t.req('POST', '/v1/tenants', { id, residency: 'mars', region: 'mars-north', durability: 'sync' })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE w (n INTEGER PRIMARY KEY, b BLOB)')).status).toBe(200);
    expect((await q(id, 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) INSERT INTO w (n, b) SELECT -x, randomblob(2000) FROM c')).status).toBe(200);
    const before = (await t.rt.directory.get(id))!;
    let stop = false;
    const acked: number[] = [];
    const failed: unknown[] = [];
    const writer = (async () => {
      for (let n = 0; !stop; n++) {
        const r = await http('POST', `/v1/tenants/${id}/query`, { sql: 'INSERT INTO w (n) VALUES (?)', params: [n] });
        if (r.status === 200) acked.push(n);
        else failed.push(r.body);
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    const moved = await http('POST', `/v1/tenants/${id}/move?wait=1`, { to: 'mars-south' });
    const afterMove = acked.length;
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await writer;
    expect(moved.status).toBe(200);
    expect(failed).toEqual([]);
    expect(acked.length).toBeGreaterThan(afterMove); // writes were acknowledged on the new primary too

    // Offline restore from the new region's bucket alone: every acknowledged write, epoch 2.
    const newBucket = t.rt.bucketFor('mars-south')!;
    expect(await keys(t.rt.bucketFor('mars-north')!, tenantPrefix(id))).toEqual([]);
    const gens = await listGenerations(newBucket, id, before.incarnation);
    expect(gens.map((g) => g.epoch)).toEqual([2]);
    const scratch = mkdtempSync(path.join(tmpdir(), 'domicile-move-test-'));
    try {
      const out = path.join(scratch, 'restored.db');
      await restore({ store: newBucket, ref: { tenant: id, incarnation: before.incarnation, epoch: 2, generation: gens[0]!.generation }, outPath: out });
      const dump = dumpDatabase(out);
      const present = new Set((dump['w'] as Array<[number, unknown]>).map(([n]) => n));
      for (const n of acked) expect(present.has(n)).toBe(true);
      expect((dump['_domicile_meta']![0] as unknown[]).slice(0, 3)).toEqual([id, before.incarnation, 2]);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses moves the policy forbids (422 naming the rule), to the current region (400), and a second concurrent move (409) — changing nothing', async () => {
    const id = 'small-co';
    expect((await t.req('POST', '/v1/tenants', { id, residency: 'mars', region: 'mars-north' })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)')).status).toBe(200);
    const before = (await t.rt.directory.get(id))!;

    const outside = await t.req('POST', `/v1/tenants/${id}/move`, { to: 'moon-base' });
    expect(outside.status).toBe(422);
    expect(outside.body.error.code).toBe('POLICY_VIOLATION');
    expect(outside.body.error.rule).toBeDefined();
    const unknown = await t.req('POST', `/v1/tenants/${id}/move`, { to: 'venus' });
    expect(unknown.status).toBe(422);
    const same = await t.req('POST', `/v1/tenants/${id}/move`, { to: 'mars-north' });
    expect(same.status).toBe(400);
    expect(same.body.error.code).toBe('BAD_REQUEST');
    const badNode = await t.req('POST', `/v1/tenants/${id}/move`, { to: 'mars-south', node: 'nope' });
    expect(badNode.status).toBe(400);
    expect((await t.req('POST', '/v1/tenants', { id: 'pinned-co', residency: 'mars' })).status).toBe(201);
    const pinned = await t.req('POST', '/v1/tenants/pinned-co/move', { to: 'mars-north' });
    expect(pinned.status).toBe(422);
    expect(pinned.body.error.code).toBe('POLICY_VIOLATION');

    const dry = await t.req('POST', `/v1/tenants/${id}/move?dryRun=1`, { to: 'moon-base' });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ dryRun: true, allowed: false });
    const dryOk = await t.req('POST', `/v1/tenants/${id}/move?dryRun=1`, { to: 'mars-south' });
    expect(dryOk.body).toMatchObject({ dryRun: true, allowed: true, node: 'mars-south-1' });

    expect(await t.rt.directory.get(id)).toEqual(before);
    expect(tenantFiles(t, 'mars-south', id)).toEqual([]);
    expect(tenantFiles(t, 'moon-base', id)).toEqual([]);
    expect((await t.req('GET', `/v1/audit?tenant=${id}`)).body.events.map((e: any) => e.action)).toEqual(['tenant.create']);

    // A second move while the first runs.
    const first = await t.req('POST', `/v1/tenants/${id}/move`, { to: 'mars-south' });
    expect(first.status).toBe(202);
    const second = await t.req('POST', `/v1/tenants/${id}/move`, { to: 'mars-south' });
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('MOVE_IN_PROGRESS');
    for (let i = 0; i < 200; i++) {
      const s = await t.req('GET', `/v1/moves/${first.body.moveId}`);
      if (s.body.phase === 'done' || s.body.phase === 'aborted') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const fin = (await t.req("GET", `/v1/moves/${first.body.moveId}`)).body;
    expect(fin.error ?? null).toBeNull();
    expect(fin.phase).toBe("done");
    expect((await t.req('GET', '/v1/moves/no-such-move')).status).toBe(404);
  }, 30_000);

  it.each(['pending', 'copying', 'catching-up', 'fenced', 'switching'] as const)('a failure at phase %s aborts: the tenant serves at the source, nothing lost, no debris in the target region', async (phase) => {
    const id = `abort-${phase}`;
    expect((await t.req('POST', '/v1/tenants', { id, residency: 'mars', region: 'mars-north' })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB)')).status).toBe(200);
    expect((await q(id, 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) INSERT INTO kv (v) SELECT randomblob(3000) FROM c')).status).toBe(200);
    const before = (await t.rt.directory.get(id))!;
    let stop = false;
    let n = 0;
    const failures: unknown[] = [];
    const writer = (async () => {
      while (!stop) {
        const r = await http('POST', `/v1/tenants/${id}/query`, { sql: 'INSERT INTO kv (v) VALUES (?)', params: [n] });
        if (r.status === 200) n++;
        else failures.push(r.body);
      }
    })();
    t.rt.moves.failAt = phase;
    let res;
    try {
      res = await t.req('POST', `/v1/tenants/${id}/move?wait=1`, { to: 'mars-south' });
    } finally {
      t.rt.moves.failAt = undefined;
    }
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await writer;

    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('INTERNAL');
    expect(res.body.move).toMatchObject({ phase: 'aborted', tenant: id, error: { code: 'INTERNAL' } });
    expect(failures).toEqual([]);
    expect(await t.rt.directory.get(id)).toEqual(before);
    expect((await q(id, 'SELECT count(*) FROM kv')).body.rows).toEqual([[300 + n]]);
    expect((await q(id, 'INSERT INTO kv (v) VALUES (1)')).status).toBe(200);
    // Replication at the source carries on (the switching abort had stopped its shipper).
    expect(await t.rt.replicator!.flush(10_000)).toBe(true);
    const rep = t.rt.replicator!.status(id)!;
    expect(rep.replicatedTxid).toBe(rep.lastTxid);
    expect((await keys(t.rt.bucketFor('mars-north')!, tenantPrefix(id))).length).toBeGreaterThan(0);
    expect(tenantFiles(t, 'mars-south', id)).toEqual([]);
    expect(await keys(t.rt.bucketFor('mars-south')!, tenantPrefix(id))).toEqual([]);
    const audit = (await t.req('GET', `/v1/audit?tenant=${id}`)).body.events;
    expect(audit[0]).toMatchObject({ action: 'tenant.move.abort', details: { phase } });
  }, 30_000);

  it('open interactive transactions: one that commits within the grace period keeps its writes; one left open is rolled back with TENANT_MOVING', async () => {
    const id = 'tx-co';
    expect((await t.req('POST', '/v1/tenants', { id, residency: 'mars', region: 'mars-north' })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE kv (k TEXT PRIMARY KEY)')).status).toBe(200);
    const pipe = (requests: unknown[], baton?: string | null) => http('POST', `/v1/tenants/${id}/v2/pipeline`, { baton: baton ?? null, requests });

    // Finishes within the grace period: the move waits for it.
    const a = await pipe([{ type: 'execute', stmt: { sql: 'BEGIN' } }, { type: 'execute', stmt: { sql: "INSERT INTO kv VALUES ('committed')" } }]);
    expect(a.status).toBe(200);
    const first = await t.req('POST', `/v1/tenants/${id}/move`, { to: 'mars-south' });
    expect(first.status).toBe(202);
    await new Promise((r) => setTimeout(r, 100));
    const commit = await pipe([{ type: 'execute', stmt: { sql: 'COMMIT' } }, { type: 'close' }], a.body.baton);
    expect(commit.status).toBe(200);
    expect(commit.body.results.map((x: any) => x.type)).toEqual(['ok', 'ok']);
    for (let i = 0; i < 200 && !['done', 'aborted'].includes(t.rt.moves.status(first.body.moveId).phase); i++) await new Promise((r) => setTimeout(r, 25));
    expect(t.rt.moves.status(first.body.moveId)).toMatchObject({ tenant: id, phase: 'done' });

    // Left open past the grace period: rolled back, the stream answers TENANT_MOVING.
    const b = await pipe([{ type: 'execute', stmt: { sql: 'BEGIN' } }, { type: 'execute', stmt: { sql: "INSERT INTO kv VALUES ('abandoned')" } }]);
    expect(b.status).toBe(200);
    const second = await http('POST', `/v1/tenants/${id}/move?wait=1`, { to: 'mars-north' });
    expect(second.status).toBe(200);
    const late = await pipe([{ type: 'execute', stmt: { sql: 'COMMIT' } }], b.body.baton);
    expect(late.status).toBe(503);
    expect(late.body).toMatchObject({ code: 'TENANT_MOVING' });
    expect((await q(id, 'SELECT k FROM kv ORDER BY k')).body.rows).toEqual([['committed']]);
    // Autocommit Hrana requests go on against the new primary.
    const after = await pipe([{ type: 'execute', stmt: { sql: "INSERT INTO kv VALUES ('after')" } }, { type: 'close' }]);
    expect(after.status).toBe(200);
    expect((await t.rt.directory.get(id))!).toMatchObject({ region: 'mars-north', epoch: 3 });
  }, 30_000);

  it('node-to-node routes take only the cluster credential: anonymous 401, admin and tenant tokens 403, a wrong secret 401', async () => {
    expect((await t.req('POST', '/v1/tenants', { id: 'wire-co', residency: 'mars' })).status).toBe(201);
    const tok = (await t.req('POST', '/v1/tenants/wire-co/tokens', { scope: 'write' })).body.token as string;
    const secret = readFileSync(path.join(t.dir, 'data', 'cluster-secret'), 'utf8').trim();
    for (const route of ['/internal/v1/moves/m1/fence', '/internal/v1/moves/m1/unfence', '/internal/v1/moves/m1/forward']) {
      expect((await t.req('POST', route, {}, null)).status).toBe(401);
      expect((await t.req('POST', route, {}, 'test-admin-token-0123456789')).status).toBe(403);
      expect((await t.req('POST', route, {}, tok)).status).toBe(403);
      expect((await t.req('POST', route, {}, `${secret}x`)).status).toBe(401);
      // The cluster credential passes (and this move is unknown here).
      expect((await t.req('POST', route, {}, secret)).status).toBe(404);
    }
    expect((await t.req('GET', '/internal/v1/moves/m1/snapshot', undefined, 'test-admin-token-0123456789')).status).toBe(403);
    expect((await t.req('GET', '/internal/v1/moves/m1/segments', undefined, null)).status).toBe(401);
    // A source served over the protocol: the warm copy has the announced size.
    const rec = (await t.rt.directory.get('wire-co'))!;
    await t.rt.directory.compareAndSet('wire-co', rec, { state: 'moving' });
    try {
      const open = await t.req('POST', '/internal/v1/moves/m2/source', { tenant: 'wire-co', incarnation: rec.incarnation, epoch: rec.epoch }, secret);
      expect(open.status).toBe(200);
      const snap = await t.app.inject({ method: 'GET', url: '/internal/v1/moves/m2/snapshot', headers: { authorization: `Bearer ${secret}` } });
      expect(snap.statusCode).toBe(200);
      expect(snap.rawPayload.byteLength).toBe(open.body.bytes);
      expect((await t.req('POST', '/internal/v1/moves/m2/unfence', {}, secret)).status).toBe(200);
    } finally {
      await t.rt.directory.compareAndSet('wire-co', rec, { state: 'active' });
    }
  });
});
