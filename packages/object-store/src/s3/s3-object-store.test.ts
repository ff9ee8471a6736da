import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDomicileError } from '@domicile/errors';
import { startS3Server, type S3Server } from '@domicile/testkit';
import { collect, describeObjectStoreContract } from '../object-store.contract.ts';
import { openObjectStore } from '../parse-bucket-url.ts';
import { S3ObjectStore } from './s3-object-store.ts';

const BUCKET = 'contract-bucket';
let server: S3Server;
let seq = 0;

beforeAll(async () => {
  server = await startS3Server({ buckets: [BUCKET] });
}, 30_000);
afterAll(async () => {
  await server?.stop();
});

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function storeAt(prefix: string, extra: Partial<ConstructorParameters<typeof S3ObjectStore>[0]> = {}): S3ObjectStore {
  return new S3ObjectStore({
    bucket: BUCKET,
    prefix,
    endpoint: server.endpoint,
    region: server.region,
    credentials: server.credentials,
    // Small parts so that the 6 MB stream test really goes through multipart.
    partSize: 5 * 1024 * 1024,
    ...extra,
  });
}

describeObjectStoreContract(
  's3 (s3rver child process)',
  async () => {
    // Each test gets its own prefix in the shared bucket: isolated and cheap.
    const store = storeAt(`t${++seq}/`);
    return { store, cleanup: async () => store.close() };
  },
  {
    // s3rver 3.7.1 ignores If-None-Match and overwrites.
    enforcesConditionalCreate: false,
    // s3rver lists folder by folder, not in S3's byte order.
    listsInByteOrder: false,
    async makeUnreachableStore() {
      const port = await deadPort();
      const store = new S3ObjectStore({
        bucket: BUCKET,
        endpoint: `http://127.0.0.1:${port}`,
        credentials: server.credentials,
      });
      return { store, cleanup: async () => store.close() };
    },
    unreachableWithinMs: 5000,
  },
);

describe('S3ObjectStore', () => {
  it('keeps the URL prefix out of listed keys and out of other prefixes', async () => {
    const a = storeAt('iso-a/');
    const b = storeAt('iso-b/');
    try {
      await a.put('k', Buffer.from('a'));
      await b.put('k', Buffer.from('b'));
      expect((await collect(a.list(''))).map((e) => e.key)).toEqual(['k']);
      expect(Buffer.from(await b.get('k')).toString()).toBe('b');
    } finally {
      a.close();
      b.close();
    }
  });

  it('opens from a bucket URL with credentials from the environment', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = server.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = server.credentials.secretAccessKey;
    try {
      const store = openObjectStore(server.bucketUrl(BUCKET, 'from-url/'));
      try {
        await store.put('x', Buffer.from('hello'));
        expect(Buffer.from(await store.get('x')).toString()).toBe('hello');
        expect(store.describe()).toBe(
          `s3://${BUCKET}/from-url/?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&forcePathStyle=true`,
        );
      } finally {
        store.close();
      }
    } finally {
      restoreEnv('AWS_ACCESS_KEY_ID', saved.id);
      restoreEnv('AWS_SECRET_ACCESS_KEY', saved.secret);
    }
  });

  it('reports a missing bucket as REPLICATION_UNAVAILABLE (no-such-bucket), not as a missing object', async () => {
    const store = new S3ObjectStore({
      bucket: 'no-such-bucket',
      endpoint: server.endpoint,
      credentials: server.credentials,
    });
    try {
      // (head cannot tell: a HEAD answer has no body to name NoSuchBucket, so it reads as a missing object.)
      for (const op of [() => store.get('k'), () => store.put('k', Buffer.from('x')), () => collect(store.list(''))]) {
        const err = await op().catch((e: unknown) => e);
        expect(isDomicileError(err) && [err.code, err.details.reason]).toEqual(['REPLICATION_UNAVAILABLE', 'no-such-bucket']);
      }
    } finally {
      store.close();
    }
  });

  it('reports wrong credentials as REPLICATION_UNAVAILABLE (access-denied) without leaking the secret', async () => {
    // s3rver checks the access key id but does not verify SigV4 signatures, so a wrong key id it must be.
    const store = storeAt('creds/', { credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'wrong-secret-value' } });
    try {
      const err = await store.put('k', Buffer.from('x')).catch((e: unknown) => e);
      expect(isDomicileError(err) && [err.code, err.details.reason]).toEqual(['REPLICATION_UNAVAILABLE', 'access-denied']);
      expect(JSON.stringify(isDomicileError(err) && err.toJSON())).not.toContain('wrong-secret-value');
      // The lean attempt was refused (403) and the command said why.
      expect(store.putStats).toMatchObject({ lean: 0, sdk: 1, leanFailures: 1 });
    } finally {
      store.close();
    }
  });

  it('comes back after the server is killed and restarted, with its data; lean puts resume after the first stored put', async () => {
    const store = storeAt('outage/', { maxAttempts: 1 });
    try {
      await store.put('before', Buffer.from('kept'));
      expect(store.putStats).toMatchObject({ lean: 1, sdk: 0, leanFailures: 0 });
      await server.kill();
      const err = await store.get('before').catch((e: unknown) => e);
      expect(isDomicileError(err) && err.code).toBe('REPLICATION_UNAVAILABLE');
      for (const k of ['down-1', 'down-2']) {
        const putErr = await store.put(k, Buffer.from('x')).catch((e: unknown) => e);
        expect(isDomicileError(putErr) && putErr.code).toBe('REPLICATION_UNAVAILABLE');
      }
      // One lean attempt failed; while the store is down only the command tries.
      expect(store.putStats).toMatchObject({ lean: 1, sdk: 2, leanFailures: 1, leanOff: undefined });
      await server.restart();
      expect(Buffer.from(await store.get('before')).toString()).toBe('kept');
      await store.put('after-1', Buffer.from('a1'));
      await store.put('after-2', Buffer.from('a2'));
      expect(store.putStats).toMatchObject({ lean: 2, sdk: 3, leanFailures: 1, leanOff: undefined });
      expect(Buffer.from(await store.get('after-2')).toString()).toBe('a2');
    } finally {
      store.close();
    }
  }, 30_000);

  it('stores small bodies with one lean request each, keys that need encoding included', async () => {
    const store = storeAt('lean/');
    const keys = ['seg/0001.seg', 'a b/c+d', 'ü/%41', "x/!'()*", 'tilde~/under_score-dot.x'];
    try {
      for (const [i, k] of keys.entries()) await store.put(k, Buffer.from(`body ${i}`), { ifNoneMatch: i % 2 === 0 });
      expect(store.putStats).toEqual({ lean: keys.length, sdk: 0, leanFailures: 0, leanOff: undefined });
      for (const [i, k] of keys.entries()) expect(Buffer.from(await store.get(k)).toString()).toBe(`body ${i}`);
      expect((await collect(store.list(''))).map((e) => e.key).sort()).toEqual([...keys].sort());
      const empty = new Uint8Array(0);
      await store.put('empty', empty);
      expect((await store.head('empty'))?.size).toBe(0);
    } finally {
      store.close();
    }
  });

  it('sends every put through the SDK command with leanPut=false, and bodies over the multipart threshold', async () => {
    const off = openObjectStore(`${server.bucketUrl(BUCKET, 'lean-off/')}&leanPut=false`, { s3: { credentials: server.credentials } }) as S3ObjectStore;
    const big = storeAt('lean-big/', { multipartThreshold: 1024 });
    try {
      await off.put('k', Buffer.from('via the command'));
      expect(off.putStats).toEqual({ lean: 0, sdk: 1, leanFailures: 0, leanOff: 'leanPut=false' });
      expect(Buffer.from(await off.get('k')).toString()).toBe('via the command');
      await big.put('small', Buffer.alloc(1000, 1));
      await big.put('large', Buffer.alloc(2048, 2));
      expect(big.putStats).toMatchObject({ lean: 1, sdk: 1, leanFailures: 0 });
      expect(Buffer.from(await big.get('large'))).toEqual(Buffer.alloc(2048, 2));
    } finally {
      off.close();
      big.close();
    }
  });
});

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}
