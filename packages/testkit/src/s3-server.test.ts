import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ListBucketsCommand, ListObjectsV2Command, PutObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Server, type S3Server } from './s3-server.ts';

function clientFor(server: S3Server): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { ...server.credentials },
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

describe('startS3Server', () => {
  let server: S3Server;
  let client: S3Client;
  beforeAll(async () => {
    server = await startS3Server({ buckets: ['alpha', 'beta'] });
    client = clientFor(server);
  }, 30_000);
  afterAll(async () => {
    client?.destroy();
    await server?.stop();
  });

  it('serves the requested buckets on a loopback port with the default credentials', async () => {
    expect(server.endpoint).toBe(`http://127.0.0.1:${server.port}`);
    const out = await client.send(new ListBucketsCommand({}));
    expect(out.Buckets?.map((b) => b.Name).sort()).toEqual(['alpha', 'beta']);
    expect(server.bucketUrl('alpha', 'p/')).toBe(
      `s3://alpha/p/?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&forcePathStyle=true`,
    );
  });

  it('pages listings with continuation tokens (needs the OpenSSL legacy provider)', async () => {
    for (const k of ['a', 'b', 'c']) await client.send(new PutObjectCommand({ Bucket: 'beta', Key: k, Body: k }));
    const first = await client.send(new ListObjectsV2Command({ Bucket: 'beta', MaxKeys: 2 }));
    expect(first.IsTruncated).toBe(true);
    const second = await client.send(
      new ListObjectsV2Command({ Bucket: 'beta', MaxKeys: 2, ContinuationToken: first.NextContinuationToken }),
    );
    expect(second.Contents?.map((o) => o.Key)).toEqual(['c']);
  });

  it('survives kill -9 and restarts on the same port with its data', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'alpha', Key: 'kept', Body: 'still here' }));
    const oldPid = server.pid!;
    await server.kill();
    expect(isAlive(oldPid)).toBe(false);
    expect(server.pid).toBeUndefined();
    // Down: a new connection is refused, or a pooled keep-alive socket to the dead process hangs up.
    const down = await client.send(new ListBucketsCommand({})).then(() => undefined, (e: unknown) => e as { code?: string; message?: string });
    expect(down).toBeDefined();
    expect(['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(down!.code ?? '') || /socket hang up/.test(down!.message ?? '')).toBe(true);
    const port = server.port;
    await server.restart();
    expect(server.port).toBe(port);
    expect(server.pid).not.toBe(oldPid);
    const got = await client.send(new GetObjectCommand({ Bucket: 'alpha', Key: 'kept' }));
    expect(await got.Body!.transformToString()).toBe('still here');
  }, 30_000);
});

describe('startS3Server teardown', () => {
  it('stop() ends the process and removes its directory', async () => {
    const server = await startS3Server({ buckets: ['gamma'] });
    const pid = server.pid!;
    expect(existsSync(server.dir)).toBe(true);
    await server.stop();
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(server.dir)).toBe(false);
    await server.stop(); // idempotent
  }, 30_000);

  it('the server exits when the process that started it is killed -9', async () => {
    // A separate Node process starts a server, prints its pid, and waits to be killed.
    const here = fileURLToPath(new URL('./s3-server.ts', import.meta.url));
    const script = `
      const { startS3Server } = await import(${JSON.stringify(here)});
      const s = await startS3Server({ buckets: ['orphan'] });
      console.log('PID ' + s.pid + ' DIR ' + s.dir);
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [childPid, dir] = await new Promise<[number, string]>((resolve, reject) => {
      let out = '';
      parent.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /PID (\d+) DIR (\S+)\n/.exec(out);
        if (m) resolve([Number(m[1]), m[2]!]);
      });
      parent.once('exit', (code) => reject(new Error(`parent exited early (${code}): ${out}`)));
    });
    expect(isAlive(childPid)).toBe(true);
    parent.kill('SIGKILL');
    const gone = await waitFor(() => !isAlive(childPid), 5000);
    if (!gone) process.kill(childPid, 'SIGKILL');
    // A parent killed -9 cannot clean up; the directory is ours to remove.
    await rm(dir, { recursive: true, force: true });
    expect(gone).toBe(true);
  }, 30_000);
});
