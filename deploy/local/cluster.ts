/**
 * `pnpm cluster`: a whole Domicile cluster on loopback from one command
 * (deploy/README.md "Local cluster"). It starts a redis-server, one
 * S3-compatible server (s3rver) per region of the policy and N node processes
 * per region, prints their URLs and the admin token, and stops everything on
 * Ctrl-C (SIGINT/SIGTERM): nodes first (graceful: they ship their WAL and
 * leave), then the S3 servers and Redis.
 *
 *   pnpm cluster [--policy FILE] [--nodes-per-region N] [--port P] [--data DIR] [--ttl MS]
 *
 * State lives in a fresh directory that is removed on exit unless `--data`
 * names one (Redis and the S3 servers start empty every time, so a kept data
 * dir is for inspecting logs and files after a run, not for resuming it).
 * Each node's log is `<data>/logs/<node>.log`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadPolicy } from '../../packages/policy/src/index.ts';
import { freePort, startRedisServer, startS3Server, S3RVER_CREDENTIALS, type RedisServer, type S3Server } from '../../packages/testkit/src/index.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(REPO, 'packages/cli/bin/domicile.js');

interface NodeProc {
  id: string;
  region: string;
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      policy: { type: 'string', default: path.join(REPO, 'config/placement.yaml') },
      'nodes-per-region': { type: 'string', default: '1' },
      port: { type: 'string' },
      data: { type: 'string' },
      ttl: { type: 'string', default: '5000' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('pnpm cluster [--policy FILE] [--nodes-per-region N] [--port FIRST_PORT] [--data DIR] [--ttl LEASE_MS]\n');
    return;
  }
  const perRegion = Number(values['nodes-per-region']);
  if (!Number.isInteger(perRegion) || perRegion < 1 || perRegion > 8) throw new Error('--nodes-per-region: expected 1..8');
  const policyPath = path.resolve(values.policy!);
  const policy = await loadPolicy(policyPath);
  const keep = values.data !== undefined;
  const root = keep ? path.resolve(values.data!) : mkdtempSync(path.join(tmpdir(), 'domicile-cluster-'));
  mkdirSync(path.join(root, 'logs'), { recursive: true });

  const secrets = {
    admin: randomBytes(24).toString('base64url'),
    token: `k1:${randomBytes(32).toString('base64url')}`,
    cluster: randomBytes(32).toString('base64url'),
  };
  let redis: RedisServer | undefined;
  const s3 = new Map<string, S3Server>();
  const nodes: NodeProc[] = [];
  let stopping: Promise<void> | undefined;

  const stop = () => (stopping ??= (async () => {
    process.stdout.write('\nstopping the cluster…\n');
    await Promise.all(nodes.map(async (n) => {
      n.child.kill('SIGTERM');
      const t = setTimeout(() => n.child.kill('SIGKILL'), 15_000);
      await n.exited;
      clearTimeout(t);
    }));
    for (const s of s3.values()) await s.stop().catch(() => undefined);
    await redis?.stop().catch(() => undefined);
    if (!keep) rmSync(root, { recursive: true, force: true });
    process.stdout.write(keep ? `stopped; files kept in ${root}\n` : 'stopped\n');
  })());
  process.on('SIGINT', () => { void stop().then(() => process.exit(0)); });
  process.on('SIGTERM', () => { void stop().then(() => process.exit(0)); });

  try {
    redis = await startRedisServer();
    for (const region of policy.regionOrder) s3.set(region, await startS3Server({ buckets: [region] }));
    let nextPort = values.port === undefined ? undefined : Number(values.port);
    for (const region of policy.regionOrder) {
      for (let i = 1; i <= perRegion; i++) {
        const id = `${region}-${i}`;
        const port = nextPort === undefined ? await freePort() : nextPort++;
        const url = `http://127.0.0.1:${port}`;
        const log = createWriteStream(path.join(root, 'logs', `${id}.log`));
        const child = spawn(process.execPath, [BIN, 'serve'], {
          cwd: REPO,
          env: {
            ...process.env,
            DOMICILE_HOST: '127.0.0.1', DOMICILE_PORT: String(port), DOMICILE_PUBLIC_URL: url,
            DOMICILE_DATA_DIR: path.join(root, id), DOMICILE_POLICY: policyPath,
            DOMICILE_REGION: region, DOMICILE_NODE_ID: id, DOMICILE_REDIS_URL: redis.url,
            // Every region's bucket: a node writes only its own; erase and the residency audit read them all.
            DOMICILE_BUCKETS: [...s3].map(([r, srv]) => `${r}=${srv.bucketUrl(r, 'domicile')}`).join(','),
            DOMICILE_ADMIN_TOKEN: secrets.admin, DOMICILE_TOKEN_SECRET: secrets.token, DOMICILE_CLUSTER_SECRET: secrets.cluster,
            DOMICILE_LEASE_TTL_MS: values.ttl!,
            AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        child.stdout!.pipe(log);
        child.stderr!.pipe(log);
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        const n: NodeProc = { id, region, url, child, exited };
        nodes.push(n);
        void exited.then((code) => {
          if (!stopping) process.stdout.write(`node ${id} exited (${code}); its log: ${path.join(root, 'logs', `${id}.log`)}\n`);
        });
      }
    }
    await Promise.all(nodes.map((n) => waitReady(n, root)));
  } catch (err) {
    await stop();
    throw err;
  }

  const lines = [
    `Domicile cluster ready: ${nodes.length} nodes, ${policy.regionOrder.length} regions (${policyPath})`,
    '',
    ...nodes.map((n) => `  ${n.id.padEnd(24)} ${n.url}`),
    '',
    `  redis                    ${redis.url}`,
    ...[...s3].map(([region, s]) => `  s3 ${region.padEnd(21)} ${s.endpoint} (bucket ${region})`),
    '',
    `  admin token              ${secrets.admin}`,
    `  data, logs               ${root}${keep ? '' : ' (removed on exit)'}`,
    '',
    'Try:',
    `  export DOMICILE_URL=${nodes[0]!.url} DOMICILE_ADMIN_TOKEN=${secrets.admin}`,
    `  pnpm domicile tenant create acme --residency ${Object.keys(policy.residencies)[0] ?? 'any'}`,
    `  curl -s -H "authorization: Bearer $DOMICILE_ADMIN_TOKEN" $DOMICILE_URL/v1/cluster`,
    '',
    'Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function waitReady(n: NodeProc, root: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  let exited = false;
  void n.exited.then(() => { exited = true; });
  for (;;) {
    if (exited) throw new Error(`node ${n.id} exited during start; see ${path.join(root, 'logs', `${n.id}.log`)}`);
    try {
      if ((await fetch(`${n.url}/readyz`)).status === 200) return;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`node ${n.id} did not become ready in 30 s; see ${path.join(root, 'logs', `${n.id}.log`)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`pnpm cluster: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
