// Region buckets wired into the runtime: one store per region from
// DOMICILE_BUCKETS (one region on a real s3rver child process, the others on
// the filesystem default), erasure across every bucket (with the S3 server
// killed and restarted), the late second sweep, and the backups route over a
// generation built by the replication library itself.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '@domicile/config';
import type { ObjectStore } from '@domicile/object-store';
import { newGenerationId, segmentKey, snapshotKey, type GenerationRef } from '@domicile/replication';
import { writeTestBackup } from '@domicile/replication/testing';
import { startDomicile, startS3Server, S3RVER_CREDENTIALS, type S3Server } from '@domicile/testkit';
import { Runtime } from '../src/runtime.ts';
import { testApp, TEST_POLICY, type TestApp } from './harness.ts';

const LEASE_TTL_MS = 500;
let s3: S3Server;
let t: TestApp;
let southUrl: string;
const savedEnv = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

beforeAll(async () => {
  s3 = await startS3Server({ buckets: ['dom-south'] });
  // The runtime's S3 store takes credentials from the standard AWS chain.
  process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
  // Two quick attempts: a killed server is reported within milliseconds.
  southUrl = `${s3.bucketUrl('dom-south', 'prod')}&maxAttempts=2&connectTimeoutMs=500`;
  // Replication off: these tests count objects they put into the buckets by hand.
  t = await testApp({ DOMICILE_BUCKETS: `mars-south=${southUrl}`, DOMICILE_LEASE_TTL_MS: String(LEASE_TTL_MS), DOMICILE_REPLICATION: 'off' });
}, 30_000);

afterAll(async () => {
  await t?.close();
  await s3?.stop();
  if (savedEnv.id === undefined) delete process.env.AWS_ACCESS_KEY_ID; else process.env.AWS_ACCESS_KEY_ID = savedEnv.id;
  if (savedEnv.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY; else process.env.AWS_SECRET_ACCESS_KEY = savedEnv.secret;
});

function bucket(region: string): ObjectStore {
  const store = t.rt.bucketFor(region);
  if (!store) throw new Error(`no bucket for ${region}`);
  return store;
}

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(prefix)) out.push(e.key);
  return out.sort(); // s3rver lists folder by folder, not in byte order

}

/** Validly keyed (fake-content) backup objects of one incarnation, as a shipper would name them. */
async function putObjects(store: ObjectStore, tenant: string, incarnation: string, n: number, epoch = 1): Promise<string[]> {
  const ref: GenerationRef = { tenant, incarnation, epoch, generation: newGenerationId() };
  const written = [snapshotKey(ref, 1)];
  for (let i = 2; i <= n; i++) written.push(segmentKey(ref, i, i));
  for (const k of written) await store.put(k, new TextEncoder().encode(`fake ${k}`));
  return written.sort();
}

async function incarnationOf(id: string): Promise<string> {
  const rec = await t.rt.directory.get(id);
  if (!rec) throw new Error(`no record for ${id}`);
  return rec.incarnation;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the runtime opens one bucket per region from DOMICILE_BUCKETS', () => {
  it('puts the listed region on S3 and every other region on file://<dataDir>/buckets/<region>', async () => {
    const dataDir = path.join(t.dir, 'data');
    expect(t.rt.buckets.map((b) => b.region)).toEqual(['mars-north', 'mars-south', 'moon-base']);
    expect(bucket('mars-south').describe()).toMatch(/^s3:\/\/dom-south\/prod\/?\?/);
    expect(t.rt.buckets.find((b) => b.region === 'mars-south')!.configured).toBe(true);
    for (const r of ['mars-north', 'moon-base']) {
      expect(bucket(r).describe()).toBe(`file://${path.join(dataDir, 'buckets', r)}`);
    }
    // The S3 one really is the s3rver bucket: a round trip through it.
    await bucket('mars-south').put('probe/one', new TextEncoder().encode('x'));
    expect(await keys(bucket('mars-south'), 'probe/')).toEqual(['probe/one']);
    await bucket('mars-south').delete('probe/one');
    expect(t.rt.bucketFor('pluto')).toBeUndefined();
  });

  it.each([
    ['venus=file:///tmp/venus-bucket', /DOMICILE_BUCKETS: unknown region "venus"/],
    ['mars-north=ftp://example.com/b', /DOMICILE_BUCKETS: region "mars-north": .*unsupported scheme "ftp"/],
    ['mars-north=s3://Bad_Bucket/x', /region "mars-north": .*Bad_Bucket/],
  ])('refuses to start on %s with a message naming it', async (spec, message) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'domicile-buckets-bad-'));
    try {
      writeFileSync(path.join(dir, 'placement.yaml'), TEST_POLICY);
      const config = parseConfig({
        DOMICILE_DATA_DIR: path.join(dir, 'data'), DOMICILE_POLICY: path.join(dir, 'placement.yaml'), DOMICILE_WORKERS: '1',
        DOMICILE_ADMIN_TOKEN: 'x'.repeat(24), DOMICILE_BUCKETS: spec,
      });
      await expect(Runtime.open(config, pino({ level: 'silent' }))).rejects.toThrow(message);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a one-region node opens only its own bucket and the ones DOMICILE_BUCKETS names', async () => {
    const one = await testApp({ DOMICILE_REGION: 'moon-base', DOMICILE_BUCKETS: `mars-south=${southUrl}` });
    try {
      expect(one.rt.buckets.map((b) => b.region)).toEqual(['mars-south', 'moon-base']);
    } finally {
      await one.close();
    }
  });
});

describe('erasure deletes the tenant from every region bucket', () => {
  it('deletes every incarnation under tenants/<id>/ in every region, verifies, reports the count, spares other tenants', async () => {
    expect((await t.req('POST', '/v1/tenants', { id: 'wipe-me', residency: 'anywhere', region: 'mars-north' })).status).toBe(201);
    const inc = await incarnationOf('wipe-me');
    await putObjects(bucket('mars-north'), 'wipe-me', inc, 3);
    await putObjects(bucket('mars-south'), 'wipe-me', inc, 2, 2); // left behind by a move
    await putObjects(bucket('moon-base'), 'wipe-me', 'old-incarnation', 1); // an earlier tenant with this id
    const survivorsN = await putObjects(bucket('mars-north'), 'wipe-me-not', 'inc-x', 2);
    const survivorsS = await putObjects(bucket('mars-south'), 'keeper', 'inc-y', 2);

    const r = await t.req('DELETE', '/v1/tenants/wipe-me');
    expect(r.status).toBe(200);
    expect(r.body.erased).toMatchObject({ bucketObjects: 6, bucketRegions: ['mars-north', 'mars-south', 'moon-base'] });
    expect(r.body.erased.files).toBeGreaterThanOrEqual(1);
    for (const region of ['mars-north', 'mars-south', 'moon-base']) expect(await keys(bucket(region), 'tenants/wipe-me/')).toEqual([]);
    expect(await keys(bucket('mars-north'), 'tenants/wipe-me-not/')).toEqual(survivorsN);
    expect(await keys(bucket('mars-south'), 'tenants/keeper/')).toEqual(survivorsS);
    const audit = await t.req('GET', '/v1/audit?tenant=wipe-me');
    expect(audit.body.events[0]).toMatchObject({ action: 'tenant.erase', details: { bucketObjects: 6 } });
  });

  it('answers 503 REPLICATION_UNAVAILABLE with Retry-After while a bucket is down, keeps the record erasing, and a retry finishes', async () => {
    await t.req('POST', '/v1/tenants', { id: 'outage', residency: 'mars', region: 'mars-north' });
    const inc = await incarnationOf('outage');
    await putObjects(bucket('mars-north'), 'outage', inc, 2);
    await putObjects(bucket('mars-south'), 'outage', inc, 3);
    await s3.kill();
    try {
      const r = await t.req('DELETE', '/v1/tenants/outage');
      expect(r.status).toBe(503);
      expect(r.body.error).toMatchObject({ code: 'REPLICATION_UNAVAILABLE', tenant: 'outage', regions: ['mars-south'] });
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      expect((await t.rt.directory.get('outage'))).toMatchObject({ state: 'erasing', incarnation: inc });
      // The id stays taken and the tenant stays invisible until the erase completes.
      expect((await t.req('GET', '/v1/tenants/outage')).status).toBe(404);
      expect((await t.req('POST', '/v1/tenants', { id: 'outage', residency: 'mars' })).status).toBe(409);
    } finally {
      await s3.restart();
    }
    const again = await t.req('DELETE', '/v1/tenants/outage');
    expect(again.status).toBe(200);
    // The reachable bucket was already emptied by the first attempt; the second finishes S3.
    expect(again.body.erased.bucketObjects).toBe(3);
    expect(await t.rt.directory.get('outage')).toBeUndefined();
    for (const region of ['mars-north', 'mars-south']) expect(await keys(bucket(region), 'tenants/outage/')).toEqual([]);
    expect((await t.req('DELETE', '/v1/tenants/outage')).status).toBe(404);
  }, 30_000);

  it('sweeps again one lease TTL later: an object a late writer adds is deleted, a re-created incarnation is spared', async () => {
    await t.req('POST', '/v1/tenants', { id: 'late', residency: 'mars', region: 'mars-south' });
    const oldInc = await incarnationOf('late');
    expect((await t.req('DELETE', '/v1/tenants/late')).status).toBe(200);
    expect(t.rt.lateSweeps.pending).toContain('late');
    // A stale node's segment lands after the first sweep; meanwhile the id is created again.
    const stale = await putObjects(bucket('mars-south'), 'late', oldInc, 1);
    await t.req('POST', '/v1/tenants', { id: 'late', residency: 'mars', region: 'mars-south' });
    const newInc = await incarnationOf('late');
    const fresh = await putObjects(bucket('mars-south'), 'late', newInc, 2);
    expect((await keys(bucket('mars-south'), 'tenants/late/')).length).toBe(3);
    await until('the late sweep', async () => !t.rt.lateSweeps.pending.includes('late') && !(await keys(bucket('mars-south'), 'tenants/late/')).includes(stale[0]!));
    expect(await keys(bucket('mars-south'), 'tenants/late/')).toEqual(fresh);
  });
});

describe('GET /v1/tenants/:id/backups', () => {
  it('lists the generations the replication library wrote into the bucket of the tenant\'s region', async () => {
    await t.req('POST', '/v1/tenants', { id: 'backed', residency: 'mars', region: 'mars-south' });
    const inc = await incarnationOf('backed');
    expect((await t.req('GET', '/v1/tenants/backed/backups')).body).toMatchObject({ generations: [] });
    const start = Date.parse('2025-03-01T00:00:00Z');
    const b = await writeTestBackup({ store: bucket('mars-south'), dir: t.dir, tenant: 'backed', incarnation: inc, epoch: 1, rows: 4, startTime: start });
    // Another region's bucket is not where this tenant's backups live.
    await writeTestBackup({ store: bucket('mars-north'), dir: t.dir, tenant: 'backed', incarnation: inc, epoch: 1, rows: 1, startTime: start });

    const r = await t.req('GET', '/v1/tenants/backed/backups');
    expect(r.status).toBe(200);
    expect(r.body.generations).toHaveLength(1);
    expect(r.body.generations[0]).toEqual({
      generation: b.ref.generation, epoch: 1, region: 'mars-south',
      snapshots: [{ txid: b.snapshot.txid, time: new Date(start).toISOString(), bytes: expect.any(Number) }],
      segmentCount: 4,
      firstTxid: b.snapshot.txid, lastTxid: b.segments.at(-1)!.txid,
      firstTime: new Date(start).toISOString(), lastTime: new Date(b.segments.at(-1)!.time).toISOString(),
    });
    expect(r.body.generations[0].lastTxid).toBe(b.snapshot.txid + 4);
    expect((await t.req('GET', '/v1/tenants/nobody/backups')).status).toBe(404);
    expect((await t.req('GET', '/v1/tenants/backed/backups', undefined, null)).status).toBe(401);
  });
});

describe('domicile serve with DOMICILE_BUCKETS', () => {
  it('logs each region\'s redacted bucket URL at start', async () => {
    const s = await startDomicile({ env: { DOMICILE_BUCKETS: `eu-central=${southUrl}`, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } });
    try {
      const lines = s.output().split('\n').filter((l) => l.includes('"region bucket"')).map((l) => JSON.parse(l) as { region: string; bucket: string });
      expect(lines.map((l) => l.region).sort()).toEqual(['eu-central', 'eu-west', 'us-east']);
      expect(lines.find((l) => l.region === 'eu-central')!.bucket).toMatch(/^s3:\/\/dom-south\/prod/);
      expect(lines.find((l) => l.region === 'eu-west')!.bucket).toBe(`file://${path.join(s.dataDir, 'buckets', 'eu-west')}`);
    } finally {
      await s.dispose();
    }
  }, 30_000);

  it('stops with a message naming the bad entry', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'domicile-buckets-serve-'));
    try {
      await expect(startDomicile({ dataDir, env: { DOMICILE_BUCKETS: 'atlantis=file:///tmp/atlantis' } })).rejects.toThrow(/DOMICILE_BUCKETS: unknown region "atlantis"/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 30_000);
});
