// POST /v1/tenants/:id/restore (DESIGN §5, docs/restore.md): in place by txid
// and by time (a new generation follows; txids continue above every earlier
// one), `as` a fork, the refusals, a corrupt backup, and requests sent during
// a restore (answered after it, no error).
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restore } from '@domicile/replication';
import type { S3Server } from '@domicile/testkit';
import { restoreRunning } from '../src/restore/restore-locks.ts';
import { s3TestApp, testApp, type TestApp } from './harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Helpers over one test app (filesystem or S3 buckets). */
function helpers(get: () => TestApp) {
  const q = (id: string, sql: string, params?: unknown[], headers?: Record<string, string>) =>
    get().req('POST', `/v1/tenants/${id}/query`, params ? { sql, params } : { sql }, undefined, headers);
  const ids = async (id: string) => (await q(id, 'SELECT id FROM kv ORDER BY id')).body.rows.map((r: number[]) => r[0]);
  const insert = async (id: string, from: number, to: number) => {
    for (let i = from; i <= to; i++) expect((await q(id, 'INSERT INTO kv VALUES (?)', [i])).status).toBe(200);
  };
  const lastTxid = async (id: string) => {
    expect(await get().rt.replicator!.flush()).toBe(true);
    return (await get().req('GET', `/v1/tenants/${id}`)).body.replication.lastTxid as number;
  };
  async function tenant(id: string) {
    expect((await get().req('POST', '/v1/tenants', { id, residency: 'moon' })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE kv (id INTEGER PRIMARY KEY)')).status).toBe(200);
  }
  /** Rebuild the newest generation of `id` from the bucket alone (no node involved) and read its rows and txid. */
  async function offline(id: string): Promise<{ ids: number[]; txid: number }> {
    expect(await get().rt.replicator!.flush()).toBe(true);
    const rec = (await get().rt.directory.get(id))!;
    const gens = (await get().req('GET', `/v1/tenants/${id}/backups`)).body.generations;
    const out = path.join(get().dir, `${id}-offline-${gens.length}.db`);
    const r = await restore({
      store: get().rt.bucketFor(rec.region)!, ref: { tenant: id, incarnation: rec.incarnation, epoch: gens.at(-1).epoch, generation: gens.at(-1).generation },
      target: 'latest', outPath: out,
    });
    const db = new Database(out, { readonly: true });
    try {
      return { ids: db.prepare('SELECT id FROM kv ORDER BY id').pluck().all() as number[], txid: r.txid };
    } finally {
      db.close();
      rmSync(out, { force: true });
    }
  }
  return { q, ids, insert, lastTxid, tenant, offline };
}

describe('POST /v1/tenants/:id/restore', () => {
  let t: TestApp;
  beforeAll(async () => { t = await testApp(); });
  afterAll(async () => { await t?.close(); });
  const { q, ids, insert, lastTxid, tenant, offline } = helpers(() => t);

  it('restores in place to a txid: later writes gone, txids continue above the old maximum, a new generation holds the result', async () => {
    await tenant('ip');
    await insert('ip', 1, 3);
    const t3 = await lastTxid('ip');
    await insert('ip', 4, 6);
    const t6 = await lastTxid('ip');
    const gensBefore = (await t.req('GET', '/v1/tenants/ip/backups')).body.generations.length;
    const r = await t.req('POST', '/v1/tenants/ip/restore', { txid: t3 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tenant: 'ip', txid: t3, fork: false, newTxid: t6 + 1 });
    expect(Date.parse(r.body.time)).toBeGreaterThan(0);
    expect(await ids('ip')).toEqual([1, 2, 3]);
    await insert('ip', 7, 7);
    expect(await ids('ip')).toEqual([1, 2, 3, 7]);
    expect(await lastTxid('ip')).toBe(t6 + 2);
    const gens = (await t.req('GET', '/v1/tenants/ip/backups')).body.generations;
    expect(gens.length).toBe(gensBefore + 1);
    expect(gens.at(-1).firstTxid).toBe(t6 + 1);
    expect(gens.at(-1).lastTxid).toBe(t6 + 2);
    // The new generation alone rebuilds exactly the live state.
    expect(await offline('ip')).toEqual({ ids: [1, 2, 3, 7], txid: t6 + 2 });
    // The old history is still whole: restoring again to txid 6's state works.
    const again = await t.req('POST', '/v1/tenants/ip/restore', { txid: t6 });
    expect(again.status).toBe(200);
    expect(await ids('ip')).toEqual([1, 2, 3, 4, 5, 6]);
    const audit = (await t.req('GET', '/v1/audit?tenant=ip')).body.events.filter((e: { action: string }) => e.action === 'tenant.restore');
    expect(audit).toHaveLength(2);
    expect(audit[0].details).toMatchObject({ txid: t6, newTxid: t6 + 3 });
  });

  it('restores in place to a time between two bursts, and forks `as` a new tenant holding exactly the first burst', async () => {
    await tenant('tm');
    await insert('tm', 1, 3);
    expect((await q('tm', 'INSERT INTO kv VALUES (?)', [4], { 'idempotency-key': 'k-four' })).status).toBe(200);
    await lastTxid('tm');
    await sleep(30);
    const at = new Date().toISOString();
    await sleep(30);
    await insert('tm', 5, 8);
    await lastTxid('tm');
    const fork = await t.req('POST', '/v1/tenants/tm/restore', { at, as: 'tm-copy' });
    expect(fork.status).toBe(200);
    expect(fork.body).toMatchObject({ tenant: 'tm-copy', fork: true });
    expect(await ids('tm-copy')).toEqual([1, 2, 3, 4]);
    expect(await ids('tm')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const shown = (await t.req('GET', '/v1/tenants/tm-copy')).body;
    expect(shown).toMatchObject({ id: 'tm-copy', region: 'moon-base', residency: 'moon', epoch: 1, state: 'active' });
    expect(shown.incarnation).toBeUndefined();
    await insert('tm-copy', 100, 100);
    expect(await ids('tm-copy')).toEqual([1, 2, 3, 4, 100]);
    // A fork is another tenant: the source's recorded Idempotency-Key answers are not carried over.
    const again = await q('tm-copy', 'INSERT INTO kv VALUES (?)', [101], { 'idempotency-key': 'k-four' });
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
    expect((await q('tm', 'INSERT INTO kv VALUES (?)', [101], { 'idempotency-key': 'k-four' })).status).toBe(422);
    expect(await ids('tm-copy')).toEqual([1, 2, 3, 4, 100, 101]);
    // The fork has backups of its own in its region's bucket.
    expect((await t.req('GET', '/v1/tenants/tm-copy/backups')).body.generations.length).toBeGreaterThan(0);

    const inPlace = await t.req('POST', '/v1/tenants/tm/restore', { at });
    expect(inPlace.status).toBe(200);
    expect(await ids('tm')).toEqual([1, 2, 3, 4]);
  });

  it('refuses bad requests and changes nothing', async () => {
    await tenant('rf');
    await insert('rf', 1, 2);
    const top = await lastTxid('rf');
    const cases: Array<[unknown, number, string]> = [
      [{}, 400, 'BAD_REQUEST'],
      [{ txid: 1, at: '2025-01-01T00:00:00Z' }, 400, 'BAD_REQUEST'],
      [{ at: 'yesterday' }, 400, 'BAD_REQUEST'],
      [{ txid: -1 }, 400, 'BAD_REQUEST'],
      [{ txid: 1, extra: true }, 400, 'BAD_REQUEST'],
      [{ txid: top + 50 }, 400, 'BAD_REQUEST'],
      [{ at: '2001-01-01T00:00:00Z' }, 400, 'BAD_REQUEST'],
      [{ txid: top, as: '../etc' }, 400, 'INVALID_TENANT_ID'],
      [{ txid: top, as: 'ip' }, 409, 'TENANT_EXISTS'],
      [{ txid: top, as: 'pinned-co' }, 422, 'POLICY_VIOLATION'],
    ];
    for (const [body, status, code] of cases) {
      const r = await t.req('POST', '/v1/tenants/rf/restore', body);
      expect([JSON.stringify(body), r.status, r.body.error?.code]).toEqual([JSON.stringify(body), status, code]);
    }
    const out = await t.req('POST', '/v1/tenants/rf/restore', { txid: top + 50 });
    expect(out.body.error.available).toMatchObject({ lastTxid: top });
    expect((await t.req('POST', '/v1/tenants/nobody/restore', { txid: 1 })).body.error.code).toBe('TENANT_NOT_FOUND');
    expect((await t.req('POST', '/v1/tenants/rf/restore', { txid: 1 }, null)).status).toBe(401);
    expect((await t.req('GET', '/v1/tenants/pinned-co')).status).toBe(404);
    expect(await ids('rf')).toEqual([1, 2]);
    // Two at once: one runs, the other is told to wait.
    const both = await Promise.all([t.req('POST', '/v1/tenants/rf/restore', { txid: top }), t.req('POST', '/v1/tenants/rf/restore', { txid: top })]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(both.find((r) => r.status === 409)!.body.error.code).toBe('RESTORE_IN_PROGRESS');
  });

  it('answers BACKUP_INVALID for a corrupt segment and leaves the tenant as it was', async () => {
    await tenant('bad');
    await insert('bad', 1, 2);
    const t2 = await lastTxid('bad');
    await insert('bad', 3, 4);
    await lastTxid('bad');
    const root = path.join(t.dir, 'data', 'buckets', 'moon-base');
    const segs: string[] = [];
    const walk = (d: string) => { for (const n of readdirSync(d)) { const p = path.join(d, n); if (statSync(p).isDirectory()) walk(p); else if (p.includes('/bad/') && p.endsWith('.seg')) segs.push(p); } };
    walk(root);
    expect(segs.length).toBeGreaterThan(0);
    for (const f of segs) {
      const b = readFileSync(f);
      b.writeUInt8(b.readUInt8(b.length - 40) ^ 0xff, b.length - 40);
      writeFileSync(f, b);
    }
    const r = await t.req('POST', '/v1/tenants/bad/restore', { txid: t2 });
    expect(r.status).toBe(500);
    expect(r.body.error.code).toBe('BACKUP_INVALID');
    expect(await ids('bad')).toEqual([1, 2, 3, 4]);
    await insert('bad', 5, 5);
  });

  it('answers reads and writes sent during an in-place restore (no error), and txids stay above every acknowledged write', async () => {
    await tenant('busy');
    await insert('busy', 1, 50);
    const t50 = await lastTxid('busy');
    await insert('busy', 51, 60);
    let done = false;
    const during = t.req('POST', '/v1/tenants/busy/restore', { txid: t50 }).finally(() => { done = true; });
    // Reads and writes for as long as the restore runs (download, checks, swap): those before the swap are undone by it, the rest stay.
    const others: Array<Promise<{ status: number; body: any }>> = [];
    for (let i = 0; !done && i < 2000; i++) {
      others.push(q('busy', 'SELECT count(*) FROM kv'), q('busy', 'INSERT INTO kv VALUES (?)', [1000 + i]));
      await sleep(2);
    }
    others.push(q('busy', 'INSERT INTO kv VALUES (?)', [5000]));
    const [r, ...rs] = await Promise.all([during, ...others]);
    expect(r.status).toBe(200);
    expect(rs.filter((x) => x.status !== 200).map((x) => x.body)).toEqual([]);
    const after = await ids('busy');
    expect(after.slice(0, 50)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(after.slice(50).every((id: number) => id >= 1000)).toBe(true);
    expect(after).toContain(5000);
    // Writes acknowledged before the swap were undone (the race this test is about did happen)...
    const writes = (rs.length + 1) / 2;
    expect(writes - (after.length - 50)).toBeGreaterThan(0);
    // ...and took txids of the old file, which its generation holds: the restored state's txid is above them all.
    const top = await lastTxid('busy');
    const gens = (await t.req('GET', '/v1/tenants/busy/backups')).body.generations;
    expect(gens.at(-2).lastTxid).toBeGreaterThan(t50 + 10);
    expect(gens.at(-2).lastTxid).toBeLessThan(r.body.newTxid);
    // The new generation's snapshot is taken in the tenant's queue, after the writes held during the swap.
    expect(gens.at(-1).firstTxid).toBeGreaterThanOrEqual(r.body.newTxid);
    expect(top).toBeGreaterThan(r.body.newTxid);
    expect(await offline('busy')).toEqual({ ids: after, txid: top });
  });

  it('answers 404 NOT_FOUND when the tenant has no backup in its bucket, and changes nothing', async () => {
    await tenant('nob');
    await insert('nob', 1, 2);
    await lastTxid('nob');
    const root = path.join(t.dir, 'data', 'buckets', 'moon-base', 'tenants', 'nob');
    expect(statSync(root).isDirectory()).toBe(true);
    rmSync(root, { recursive: true });
    const r = await t.req('POST', '/v1/tenants/nob/restore', { txid: 1 });
    expect([r.status, r.body.error.code, r.body.error.region]).toEqual([404, 'NOT_FOUND', 'moon-base']);
    expect(await ids('nob')).toEqual([1, 2]);
  });

  it('makes an erase or a move wait for a running restore (RESTORE_IN_PROGRESS), then allows them', async () => {
    expect((await t.req('POST', '/v1/tenants', { id: 'held', residency: 'anywhere', region: 'moon-base' })).status).toBe(201);
    expect((await q('held', 'CREATE TABLE kv (id INTEGER PRIMARY KEY)')).status).toBe(200);
    await insert('held', 1, 30);
    const t30 = await lastTxid('held');
    await insert('held', 31, 40);
    const running = t.req('POST', '/v1/tenants/held/restore', { txid: t30 });
    while (!restoreRunning('held')) await new Promise((r) => setImmediate(r));
    const erase = await t.req('DELETE', '/v1/tenants/held');
    expect([erase.status, erase.body.error?.code]).toEqual([409, 'RESTORE_IN_PROGRESS']);
    const move = await t.req('POST', '/v1/tenants/held/move', { to: 'mars-north' });
    expect([move.status, move.body.error?.code]).toEqual([409, 'RESTORE_IN_PROGRESS']);
    expect((await running).status).toBe(200);
    expect(await ids('held')).toHaveLength(30);
    expect((await t.req('DELETE', '/v1/tenants/held')).status).toBe(200);
  });
});

describe('restore with replication off', () => {
  it('answers 503 REPLICATION_UNAVAILABLE (there are no backups)', async () => {
    const t = await testApp({ DOMICILE_REPLICATION: 'off' });
    try {
      expect((await t.req('POST', '/v1/tenants', { id: 'off', residency: 'moon' })).status).toBe(201);
      const r = await t.req('POST', '/v1/tenants/off/restore', { txid: 1 });
      expect([r.status, r.body.error.code, r.headers['retry-after'] !== undefined]).toEqual([503, 'REPLICATION_UNAVAILABLE', true]);
    } finally {
      await t.close();
    }
  });
});

describe('restore from an S3 bucket (s3rver)', () => {
  let s3: S3Server;
  let t: TestApp;
  let env: Awaited<ReturnType<typeof s3TestApp>>;
  beforeAll(async () => {
    env = await s3TestApp('rest');
    ({ s3, t } = env);
  }, 30_000);
  afterAll(async () => {
    await env?.close();
  });
  const { ids, insert, lastTxid, tenant, offline } = helpers(() => t);

  it('restores in place and forks from the S3 bucket; the new generation there rebuilds the live state', async () => {
    await tenant('s3r');
    await insert('s3r', 1, 5);
    const t5 = await lastTxid('s3r');
    await insert('s3r', 6, 9);
    const t9 = await lastTxid('s3r');
    const fork = await t.req('POST', '/v1/tenants/s3r/restore', { txid: t5, as: 's3r-fork' });
    expect([fork.status, fork.body.tenant, fork.body.txid]).toEqual([200, 's3r-fork', t5]);
    expect(await ids('s3r-fork')).toEqual([1, 2, 3, 4, 5]);
    const r = await t.req('POST', '/v1/tenants/s3r/restore', { txid: t5 });
    expect([r.status, r.body.txid, r.body.newTxid]).toEqual([200, t5, t9 + 1]);
    expect(await ids('s3r')).toEqual([1, 2, 3, 4, 5]);
    await insert('s3r', 10, 10);
    expect(await offline('s3r')).toEqual({ ids: [1, 2, 3, 4, 5, 10], txid: t9 + 2 });
  }, 30_000);
});
