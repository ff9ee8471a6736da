// `domicile restore TENANT --from BUCKET_URL --out FILE`: the real bin as a
// child process, no node running, against backups written by the replication
// library into a filesystem bucket and into a real s3rver bucket.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openObjectStore, FsObjectStore, type ObjectStore } from '@domicile/object-store';
import { dumpDatabase, integrityCheck, writeTestBackup, type TestBackup } from '@domicile/replication/testing';
import { startS3Server, S3RVER_CREDENTIALS, type S3Server } from '@domicile/testkit';

const BIN = fileURLToPath(new URL('../bin/domicile.js', import.meta.url));
const START = Date.parse('2025-05-01T10:00:00Z');

interface Result { code: number; stdout: string; stderr: string }

function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOMICILE_') && !k.startsWith('AWS_')));
  return new Promise((resolve) => {
    // No DOMICILE_URL and a dead --url on purpose: nothing may try to reach a node.
    execFile(process.execPath, [BIN, ...args], { cwd: dir, env: { ...clean, DOMICILE_URL: 'http://127.0.0.1:9', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Rows of the restored file's `items` table, and SQLite's own verdict on it. */
function rowsOf(file: string): unknown[] {
  return dumpDatabase(file)['items']!;
}
const expectedRows = (n: number) => Array.from({ length: n }, (_, i) => [i + 1, `row ${i + 1}`]);

let dir: string;
let fsUrl: string;
let fsStore: FsObjectStore;
let backup: TestBackup;
let s3: S3Server;
let s3Store: ObjectStore;
let s3Backup: TestBackup;
const s3Env = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey };

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'domicile-offline-restore-'));
  const root = path.join(dir, 'bucket');
  fsUrl = pathToFileURL(root).href;
  fsStore = new FsObjectStore(root);
  backup = await writeTestBackup({ store: fsStore, dir, tenant: 'acme', incarnation: 'inc-1', rows: 5, startTime: START });
  s3 = await startS3Server({ buckets: ['dom-dr'] });
  s3Store = openObjectStore(s3.bucketUrl('dom-dr', 'eu'), { s3: { credentials: S3RVER_CREDENTIALS } });
  s3Backup = await writeTestBackup({ store: s3Store, dir, tenant: 'globex', incarnation: 'inc-9', epoch: 3, rows: 3, startTime: START });
}, 30_000);

afterAll(async () => {
  s3Store?.close();
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('domicile restore --from (offline disaster recovery)', () => {
  it('rebuilds the newest state from a file:// bucket: every row, integrity_check passing, JSON summary', async () => {
    const out = path.join(dir, 'acme-latest.db');
    const r = await cli(['restore', 'acme', '--from', fsUrl, '--out', out, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      tenant: 'acme', incarnation: 'inc-1', generation: backup.ref.generation, epoch: 1,
      txid: backup.segments.at(-1)!.txid, time: new Date(backup.segments.at(-1)!.time).toISOString(), out,
    });
    expect(doc.bytes).toBeGreaterThan(0);
    expect(rowsOf(out)).toEqual(expectedRows(5));
    // The library ran integrity_check; check again independently of it.
    expect(integrityCheck(out)).toEqual(['ok']);
    expect(dumpDatabase(out)['_domicile_meta']).toEqual([['acme', 'inc-1', 1, backup.segments.at(-1)!.txid]]);
  });

  it('--txid restores an earlier state, --at the state at a time', async () => {
    const third = backup.segments[2]!;
    const byTxid = path.join(dir, 'acme-txid.db');
    const r = await cli(['restore', 'acme', '--from', fsUrl, '--out', byTxid, '--txid', String(third.txid)]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`restored acme to txid ${third.txid}`);
    expect(rowsOf(byTxid)).toEqual(expectedRows(3));

    const byTime = path.join(dir, 'acme-at.db');
    const at = new Date(backup.segments[1]!.time + 500).toISOString();
    const t = await cli(['restore', 'acme', '--from', fsUrl, '--out', byTime, '--at', at, '--json']);
    expect(t.code).toBe(0);
    expect(JSON.parse(t.stdout).txid).toBe(backup.segments[1]!.txid);
    expect(rowsOf(byTime)).toEqual(expectedRows(2));
  });

  it('restores from an s3:// bucket on a real S3-compatible server', async () => {
    const out = path.join(dir, 'globex.db');
    const r = await cli(['restore', 'globex', '--from', s3.bucketUrl('dom-dr', 'eu'), '--out', out, '--json'], s3Env);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ tenant: 'globex', incarnation: 'inc-9', epoch: 3, txid: s3Backup.segments.at(-1)!.txid });
    expect(rowsOf(out)).toEqual(expectedRows(3));
    expect(integrityCheck(out)).toEqual(['ok']);
  }, 30_000);

  it('refuses to overwrite an existing file unless --force', async () => {
    const out = path.join(dir, 'taken.db');
    writeFileSync(out, 'precious');
    const r = await cli(['restore', 'acme', '--from', fsUrl, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('refusing to overwrite');
    expect(readFileSync(out, 'utf8')).toBe('precious');
    writeFileSync(`${out}-wal`, 'a stale log SQLite must not replay onto the restored file');
    const f = await cli(['restore', 'acme', '--from', fsUrl, '--out', out, '--force']);
    expect(f.code).toBe(0);
    expect(existsSync(`${out}-wal`)).toBe(false);
    expect(rowsOf(out)).toEqual(expectedRows(5));
  });

  it('refuses to guess between incarnations and lists them; --incarnation picks one', async () => {
    const root = path.join(dir, 'two-incs');
    const store = new FsObjectStore(root);
    await writeTestBackup({ store, dir, tenant: 'reborn', incarnation: 'first', rows: 1, startTime: START });
    await writeTestBackup({ store, dir, tenant: 'reborn', incarnation: 'second', rows: 2, startTime: START + 60_000 });
    const out = path.join(dir, 'reborn.db');
    const r = await cli(['restore', 'reborn', '--from', pathToFileURL(root).href, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/2 incarnations.*first.*second.*--incarnation/);
    expect(existsSync(out)).toBe(false);
    const ok = await cli(['restore', 'reborn', '--from', pathToFileURL(root).href, '--out', out, '--incarnation', 'second']);
    expect(ok.code).toBe(0);
    expect(rowsOf(out)).toEqual(expectedRows(2));
  });

  it('a corrupted object fails with BACKUP_INVALID, exit 1, and leaves no output file', async () => {
    const root = path.join(dir, 'corrupt');
    const store = new FsObjectStore(root);
    const b = await writeTestBackup({ store, dir, tenant: 'broken', incarnation: 'inc-1', rows: 4, startTime: START });
    // Flip one byte in the middle of the second segment.
    const file = path.join(root, b.segments[1]!.key);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(file, bytes);
    const out = path.join(dir, 'broken.db');
    const r = await cli(['restore', 'broken', '--from', pathToFileURL(root).href, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error BACKUP_INVALID');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith('broken.db'))).toEqual([]);
  });

  it.each([
    ['ftp://example.com/backups', /Invalid bucket URL ftp:\/\/example.com\/backups.*unsupported scheme "ftp"/],
    ['s3://Bad_Bucket/x', /Invalid bucket URL s3:\/\/Bad_Bucket\/x.*not a valid S3 bucket name/],
    ['not a url', /Invalid bucket URL not a url/],
  ])('an invalid bucket URL %s is a usage error naming it', async (url, message) => {
    const r = await cli(['restore', 'acme', '--from', url, '--out', path.join(dir, 'never.db')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(existsSync(path.join(dir, 'never.db'))).toBe(false);
  });

  it('a tenant with no backups in the bucket fails with TENANT_NOT_FOUND naming the bucket', async () => {
    const r = await cli(['restore', 'nobody', '--from', fsUrl, '--out', path.join(dir, 'nobody.db')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error TENANT_NOT_FOUND: no backups of tenant "nobody" in file://');
  });

  it('offline options without --from, and --from without --out, are usage errors', async () => {
    expect((await cli(['restore', 'acme', '--txid', '3', '--out', 'x.db'])).code).toBe(2);
    const r = await cli(['restore', 'acme', '--from', fsUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('needs --out FILE');
  });
});
