// POST /v1/tenants/:id/restore (DESIGN §5, docs/restore.md): in place by txid
// and by time (a new generation follows; txids continue above every earlier
// one), `as` a fork, the refusals, a corrupt backup, and requests sent during
// a restore (answered after it, no error).
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testApp, type TestApp } from './harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('POST /v1/tenants/:id/restore', () => {
  let t: TestApp;
  beforeAll(async () => { t = await testApp(); });
  afterAll(async () => { await t?.close(); });

  const q = (id: string, sql: string, params?: unknown[]) => t.req('POST', `/v1/tenants/${id}/query`, params ? { sql, params } : { sql });
  const ids = async (id: string) => (await q(id, 'SELECT id FROM kv ORDER BY id')).body.rows.map((r: number[]) => r[0]);
  const insert = async (id: string, from: number, to: number) => {
    for (let i = from; i <= to; i++) expect((await q(id, 'INSERT INTO kv VALUES (?)', [i])).status).toBe(200);
  };
  const lastTxid = async (id: string) => {
    expect(await t.rt.replicator!.flush()).toBe(true);
    return (await t.req('GET', `/v1/tenants/${id}`)).body.replication.lastTxid as number;
  };
  async function tenant(id: string) {
    expect((await t.req('POST', '/v1/tenants', { id, residency: 'moon' })).status).toBe(201);
    expect((await q(id, 'CREATE TABLE kv (id INTEGER PRIMARY KEY)')).status).toBe(200);
  }

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
    await insert('tm', 1, 4);
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

  it('holds requests sent during an in-place restore and answers them after it', async () => {
    await tenant('busy');
    await insert('busy', 1, 50);
    const t50 = await lastTxid('busy');
    await insert('busy', 51, 60);
    const during = t.req('POST', '/v1/tenants/busy/restore', { txid: t50 });
    const reads = Array.from({ length: 10 }, () => q('busy', 'SELECT count(*) FROM kv'));
    const rs = await Promise.all([during, ...reads]);
    expect(rs.map((r) => r.status)).toEqual(Array(11).fill(200));
    expect(await ids('busy')).toHaveLength(50);
  });
});
