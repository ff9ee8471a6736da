import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '@domicile/config';
import { EmbeddedDirectory, RedisDirectory, RedisMembership, type Directory, type TenantRecord } from '@domicile/directory';
import { DomicileError } from '@domicile/errors';
import type { ObjectStore } from '@domicile/object-store';
import { findRegion, loadPolicy, violations, type Policy } from '@domicile/policy';
import { ShardPool, shardPath, type ShardRef } from '@domicile/shard';
import { AuditLog } from './audit/audit-log.ts';
import { ClusterNode } from './cluster/cluster-node.ts';
import { Failover } from './cluster/failover.ts';
import { OwnedDirectory } from './cluster/owned-directory.ts';
import { sweepTenantObjects } from './buckets/bucket-eraser.ts';
import { LateSweeps } from './buckets/late-sweeps.ts';
import { RegionBuckets, type RegionBucket } from './buckets/region-buckets.ts';
import { SchemaJobs } from './schema/schema-jobs.ts';
import type { SchemaStore } from './schema/schema-store.ts';
import { RedisSchemaStore } from './schema/redis-schema-store.ts';
import { SqliteSchemaStore } from './schema/sqlite-schema-store.ts';
import { AdminAuth } from './auth/admin-auth.ts';
import { TenantTokens } from './auth/tenant-tokens.ts';
import { Metrics } from './metrics.ts';
import { CheckpointHolds } from './moves/checkpoint-holds.ts';
import { MoveManager } from './moves/move-manager.ts';
import { Replicator, type ReplicatorOptions } from './replication/replicator.ts';
import { ThreadShippers } from './replication/shipper-thread.ts';
import { randomSecret, readOrCreateSecret, secretFiles } from './secrets.ts';

/** A node this process runs: on the embedded default one per region of the policy. */
export interface LocalNode {
  id: string;
  region: string;
  /** `<dataDir>/<region>`: shards (and later the filesystem bucket) of this region. */
  dir: string;
}

/**
 * Everything one Domicile process holds: configuration, the current policy, the directory,
 * the shard pool, the audit log, auth and metrics. Routes get it; nothing else is global.
 */
export class Runtime {
  readonly config: Config;
  readonly log: Logger;
  readonly directory: Directory;
  readonly pool: ShardPool;
  readonly audit: AuditLog;
  /** The cluster's migration list (schema fan-out, DESIGN §5). */
  readonly schema: SchemaStore;
  /** Schema jobs of this node, in memory. */
  readonly schemaJobs: SchemaJobs;
  readonly adminAuth: AdminAuth;
  readonly tokens: TenantTokens;
  readonly metrics: Metrics;
  readonly nodes: ReadonlyMap<string, LocalNode>;
  /** Second sweeps of erased tenants' bucket prefixes, one lease TTL after each erase. */
  readonly lateSweeps: LateSweeps;
  /** Ships every shard's WAL to its region's bucket (DESIGN §8); undefined when DOMICILE_REPLICATION=off. */
  readonly replicator: Replicator | undefined;
  /** Where the generated admin token lives (embedded default), for the start-up log. */
  readonly adminTokenFile: string | undefined;
  /** Tenant moves (DESIGN §9) and the data plane's per-tenant gate. */
  readonly moves: MoveManager;
  /** This node in its cluster (DOMICILE_REDIS_URL set); undefined on the embedded default. */
  readonly cluster: ClusterNode | undefined;
  /** Takes over the tenants of dead nodes of this region (cluster only; started by {@link joinCluster}). */
  readonly failover: Failover | undefined;
  #policy: Policy;
  #ready = false;
  readonly #buckets: RegionBuckets;

  private constructor(init: Omit<Runtime, 'policy' | 'ready' | 'setReady' | 'swapPolicy' | 'shardRef' | 'nodeForRegion' | 'close' | 'startupViolations' | 'schemaJobs' | 'buckets' | 'bucketFor' | 'lateSweeps' | 'replicationView' | 'replicationLagByRegion' | 'moves' | 'cluster' | 'failover' | 'joinCluster'> & { cluster: ClusterNode | undefined } & { policy: Policy; regionBuckets: RegionBuckets; checkpointHolds: CheckpointHolds }) {
    this.config = init.config;
    this.log = init.log;
    this.directory = init.directory;
    this.pool = init.pool;
    this.audit = init.audit;
    this.schema = init.schema;
    this.schemaJobs = new SchemaJobs({
      schema: init.schema, directory: init.directory, pool: init.pool, shardRef: (t) => this.shardRef(t), log: init.log.child({ component: 'schema' }),
      nodeId: init.cluster?.id,
    });
    this.adminAuth = init.adminAuth;
    this.tokens = init.tokens;
    this.metrics = init.metrics;
    this.nodes = init.nodes;
    this.adminTokenFile = init.adminTokenFile;
    this.cluster = init.cluster;
    this.failover = init.cluster ? new Failover(this, init.cluster, { sweepIntervalMs: init.config.failoverSweepMs }) : undefined;
    this.replicator = init.replicator;
    this.#policy = init.policy;
    this.#buckets = init.regionBuckets;
    this.moves = new MoveManager(this, init.checkpointHolds);
    this.lateSweeps = new LateSweeps({
      delayMs: init.config.leaseTtlMs,
      log: init.log.child({ component: 'erase' }),
      // By now the id may belong to a new incarnation: spare that one's objects.
      sweep: async (tenant) => {
        const current = await this.directory.get(tenant);
        return sweepTenantObjects(this.buckets, tenant, current ? { keepIncarnation: current.incarnation } : {});
      },
    });
  }

  /** Loads the policy (refusing to start on an invalid one), opens the directory, audit log and pool. */
  static async open(config: Config, log: Logger): Promise<Runtime> {
    const policy = await loadPolicy(config.policyPath);
    const regions = config.region ? [config.region] : [...policy.regionOrder];
    for (const r of regions) {
      if (!findRegion(policy, r)) throw new DomicileError('BAD_REQUEST', `DOMICILE_REGION: "${r}" is not a region of ${policy.source}`);
    }
    const nodes = new Map<string, LocalNode>();
    for (const region of regions) {
      const id = config.region && config.nodeId ? config.nodeId : `${region}-1`;
      nodes.set(region, { id, region, dir: path.join(config.dataDir, region) });
    }

    // Before anything is opened: a bad DOMICILE_BUCKETS stops the start with nothing to clean up.
    const regionBuckets = RegionBuckets.open({
      spec: config.buckets, policyRegions: policy.regionOrder, servedRegions: regions, dataDir: config.dataDir,
    });

    const files = secretFiles(config.dataDir);
    let adminTokens = config.adminTokens;
    let adminTokenFile: string | undefined;
    if (adminTokens.size === 0) {
      const s = readOrCreateSecret(files.adminToken, randomSecret);
      adminTokens = new Map([['admin', s.value]]);
      adminTokenFile = files.adminToken;
    }
    const secrets = config.tokenSecrets.length > 0
      ? config.tokenSecrets
      : [{ kid: 'k1', secret: readOrCreateSecret(files.tokenSecret, randomSecret).value }];

    const metrics = new Metrics();
    const replicating = config.replication === 'on';
    let replicator: Replicator | undefined;
    let moves: MoveManager | undefined;
    const checkpointHolds = new CheckpointHolds();
    const pool = new ShardPool({
      replication: replicating,
      onCommit: (ref) => {
        replicator?.notify(ref);
        moves?.noteCommit(ref);
      },
      workers: config.workers,
      maxOpenShards: config.maxOpenShards,
      statementTimeoutMs: config.statementTimeoutMs,
      sessionIdleTimeoutMs: config.sessionIdleTimeoutMs,
      maxResultBytes: config.maxResultBytes,
      maxDbBytes: config.maxDbBytes,
      logger: log.child({ component: 'shards' }),
    });
    let directory: Directory;
    let cluster: ClusterNode | undefined;
    if (config.redisUrl) {
      // A cluster node (docs/cluster.md): the directory and the leases live in Redis; this process is
      // one node of one region. It joins once it listens (startServer), announcing its URL.
      const redis = new RedisDirectory({ url: config.redisUrl });
      const node = nodes.values().next().value!;
      cluster = new ClusterNode({ membership: new RedisMembership({ directory: redis, ttlMs: config.leaseTtlMs }), id: node.id, region: node.region });
      // Owned tenants' records from memory while the lease holds: they keep serving through a Redis pause.
      directory = new OwnedDirectory(redis, cluster);
    } else {
      directory = new EmbeddedDirectory(path.join(config.dataDir, 'directory.db'));
    }
    const audit = new AuditLog(path.join(config.dataDir, 'audit.db'));
    // The migration list is the cluster's: in Redis when there is one, a file of the embedded default otherwise.
    const schema: SchemaStore = config.redisUrl ? new RedisSchemaStore({ url: config.redisUrl }) : new SqliteSchemaStore(path.join(config.dataDir, 'schema.db'));
    try {
      await pool.start();
    } catch (err) {
      await cluster?.leave();
      await directory.close();
      audit.close();
      await schema.close();
      regionBuckets.close();
      throw err;
    }
    metrics.watchPool(pool);
    let shippers: ThreadShippers | undefined;
    metrics.watchThreads(() => {
      const tid = shippers?.osThreadId;
      return tid === undefined ? pool.threads() : [...pool.threads(), { thread: 'shipper', tid }];
    });
    if (replicating) {
      // A shard's region is the local node whose directory holds its file.
      const regionOf = (ref: ShardRef): string | undefined => {
        for (const node of nodes.values()) if (ref.path.startsWith(node.dir + path.sep)) return node.region;
        return undefined;
      };
      let onUpload: ReplicatorOptions['onUpload'];
      // The shipper thread uploads too: it opens each region's bucket from its configured URL.
      const bucketSources = new Map(regionBuckets.all().map((b) => [b.store, b.source] as const));
      // Shippers read the live database files through the pool's descriptors (@domicile/shard live-file.ts).
      shippers = new ThreadShippers({ sourceOf: (store) => bucketSources.get(store), liveFiles: pool });
      replicator = new Replicator({
        // A move's checkpoint holds apply to the replicator's checkpoints (moves/checkpoint-holds.ts).
        pool: checkpointHolds.wrap(pool),
        log: log.child({ component: 'replication' }),
        storeFor: (ref) => {
          const region = regionOf(ref);
          return region === undefined ? undefined : regionBuckets.get(region)?.store;
        },
        onUpload: (...args) => onUpload?.(...args),
        onCheckpoint: metrics.watchCheckpoints(regionOf),
        shippers,
        snapshotIntervalMs: config.snapshotIntervalMs,
        shipIntervalMs: config.shipIntervalMs,
        concurrency: config.shipConcurrency,
        checkpointBytes: config.checkpointBytes,
        checkpointForceBytes: config.checkpointForceBytes,
        retentionMs: config.retentionMs,
      });
      onUpload = metrics.watchReplication(replicator, regionOf);
      const regionOfBucket = new Map(regionBuckets.all().map((b) => [b.source, b.region] as const));
      const threadShippers = shippers;
      metrics.watchS3Puts(() => threadShippers.putTotals(), (bucket) => regionOfBucket.get(bucket));
    }
    const rt = new Runtime({
      config, log, directory, pool, audit, schema, metrics, nodes, adminTokenFile, regionBuckets, replicator, cluster,
      adminAuth: new AdminAuth(adminTokens), tokens: new TenantTokens(secrets, { cacheSize: config.tokenCache }), policy, checkpointHolds,
    });
    moves = rt.moves;
    await rt.moves.recover();
    if (replicator) {
      rt.#resumeUnshipped().catch((err: unknown) => log.error({ err }, 'scanning shards with unshipped WAL frames failed'));
    }
    return rt;
  }

  /**
   * After a start (a crash or kill -9 included): every local shard whose -wal
   * holds frames resumes shipping now, not at its next write (DESIGN §8:
   * shipped on reopen, before any checkpoint).
   */
  async #resumeUnshipped(): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.directory.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const t of page.tenants) {
        if (t.state !== 'active' && t.state !== 'moving') continue;
        if (!this.nodes.has(t.region) || (this.cluster && t.node !== this.cluster.id)) continue;
        const ref = this.shardRef(t);
        let size = 0;
        try { size = statSync(`${ref.path}-wal`).size; } catch { /* none */ }
        if (size > 0) this.replicator?.notify(ref);
      }
      cursor = page.nextCursor;
    } while (cursor);
  }

  /** Cluster: take the lease (announcing `url`), then start taking over dead nodes' tenants. */
  async joinCluster(url: string): Promise<void> {
    if (!this.cluster) return;
    await this.cluster.join(url, this.#policy.hash);
    this.failover?.start();
  }

  /** Worst replication lag (ms) among the tenants of each region this process serves; undefined when replication is off. */
  replicationLagByRegion(): Map<string, number> | undefined {
    if (!this.replicator) return undefined;
    return this.replicator.maxLagMsBy((ref) => {
      for (const n of this.nodes.values()) if (ref.path.startsWith(n.dir + path.sep)) return n.region;
      return undefined;
    });
  }

  /** Replication block of `GET /v1/tenants/:id` (DESIGN §8). */
  replicationView(t: TenantRecord): { mode: string; lagMs: number; lastTxid: number | null; replicatedTxid: number | null } {
    if (!this.replicator || !this.#buckets.get(t.region)) return { mode: 'off', lagMs: 0, lastTxid: null, replicatedTxid: null };
    const s = this.replicator.status(t.id);
    return { mode: t.durability, lagMs: s?.lagMs ?? 0, lastTxid: s?.lastTxid ?? null, replicatedTxid: s?.replicatedTxid ?? null };
  }

  /** The policy in force; replaced as a whole by a reload. */
  get policy(): Policy {
    return this.#policy;
  }

  /** True once the server listens and until shutdown starts. */
  get ready(): boolean {
    return this.#ready;
  }

  setReady(ready: boolean): void {
    this.#ready = ready;
  }

  /** Installs a new policy (already validated) and returns the tenants it leaves in violation. */
  async swapPolicy(next: Policy): Promise<ReturnType<typeof violations>> {
    this.#policy = next;
    return this.startupViolations();
  }

  /** Tenants whose placement the current policy forbids (logged at start and on reload). */
  async startupViolations(): Promise<ReturnType<typeof violations>> {
    const all: TenantRecord[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.directory.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
      all.push(...page.tenants);
      cursor = page.nextCursor;
    } while (cursor);
    return violations(this.#policy, all);
  }

  /** The local node serving `region`, or undefined when this process does not serve it. */
  nodeForRegion(region: string): LocalNode | undefined {
    return this.nodes.get(region);
  }

  /** Where a tenant's shard lives on this process. Throws NODE_UNAVAILABLE when its region is not served here. */
  shardRef(t: TenantRecord): ShardRef {
    const node = this.nodes.get(t.region);
    if (!node) throw new DomicileError('NODE_UNAVAILABLE', `no live node serves region "${t.region}"`, { region: t.region });
    // In a cluster a region has several nodes: only the owner has the file (routing sends the rest on).
    if (this.cluster && node.id !== t.node) throw new DomicileError('NODE_UNAVAILABLE', `tenant "${t.id}" is served by node ${t.node}, not ${node.id}`, { tenant: t.id, node: t.node });
    return { tenant: t.id, incarnation: t.incarnation, epoch: t.epoch, path: shardPath(node.dir, t.id) };
  }

  /** Every region bucket this process knows, in policy order (on the embedded default: every region). */
  get buckets(): RegionBucket[] {
    return this.#buckets.all();
  }

  /** The object store of `region`'s bucket, or undefined when this process knows none for it. */
  bucketFor(region: string): ObjectStore | undefined {
    return this.#buckets.get(region)?.store;
  }

  /**
   * Graceful: finish in-flight shard work, ship every committed frame to the
   * buckets (replication on; bounded wait), close every shard (checkpointed
   * only when replication is off), close files.
   */
  async close(): Promise<void> {
    this.#ready = false;
    await this.schemaJobs.close();
    await this.moves.close();
    await this.failover?.close();
    await this.lateSweeps.close();
    if (this.replicator) {
      const shipped = await this.replicator.flush(10_000);
      if (!shipped) this.log.warn('shutdown: some committed frames are not shipped yet; they stay in the -wal files and ship at the next start');
    }
    await this.pool.close();
    await this.replicator?.close();
    // Drop the lease once nothing is served any more: a peer may take the tenants at once.
    await this.cluster?.leave().catch((err: unknown) => this.log.warn({ err: String((err as Error)?.message ?? err) }, 'leaving the cluster failed; the lease expires by itself'));
    await this.directory.close();
    this.audit.close();
    await this.schema.close();
    this.#buckets.close();
  }
}

/** A fresh incarnation id. */
export const newIncarnation = (): string => randomUUID();
