/**
 * The node-to-node side of a move (DESIGN §9), shaped as the protocol
 * separate processes speak over HTTP (internal-routes.ts serves the source
 * side under /internal/v1/moves, cluster credential only). On the embedded
 * default both ends live in this process and `LocalMoveTransport` calls them
 * directly.
 */
import { renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { LiveFileLender, ShardRef } from '@domicile/shard';
import { DomicileError } from '@domicile/errors';
import type { ShardChanges, SnapshotInfo } from './wal-follower.ts';
import { WalFollower } from './wal-follower.ts';
import type { ObjectStore } from '@domicile/object-store';
import { HttpMoveTarget } from './http-move-target.ts';
import { PendingGeneration } from './pending-generation.ts';
import { ShardReceiver } from './shard-receiver.ts';
import type { TenantGate } from './tenant-gate.ts';

/** The owner of the tenant's current primary. */
export interface MoveSource {
  /** Pin the shard's current state; describes the warm copy. */
  open(): Promise<SnapshotInfo>;
  /** The warm copy, in chunks of whole pages, while the source keeps serving. */
  snapshot(): AsyncIterable<Uint8Array>;
  /** Commits since the previous call (segments since a position), or null. */
  changes(): Promise<ShardChanges | null>;
  /**
   * Stop committing the tenant's writes: hold new requests, wait for the ones
   * in flight, give open interactive transactions the grace period and then
   * roll them back with TENANT_MOVING, and hold the shard.
   */
  fence(): Promise<void>;
  /** Inside the fence: the source's rolling checksum and its txid as SQLite reads it. */
  state(): Promise<{ checksum: bigint; txid: number }>;
  /**
   * Stop replicating the source shard (before the switch). Stops at once (no
   * new upload starts); the promise settles when an upload in flight has ended.
   */
  stopReplication(): Promise<void>;
  /**
   * After the directory switch: delete the source's files, release the shard,
   * and let the held requests go on to the new primary (forward).
   */
  handOff(): Promise<void>;
  /** Abort: release the fence (if held) and carry on serving. Idempotent. */
  unfence(): Promise<void>;
}

/** The node that receives the tenant. */
export interface MoveTarget {
  begin(info: SnapshotInfo): Promise<void>;
  write(chunk: Uint8Array): Promise<void>;
  apply(changes: ShardChanges): Promise<void>;
  sync(): Promise<void>;
  /**
   * Upload to the target region's bucket what the pending generation of the
   * new epoch lacks (pending-generation.ts): the first call, the copy as it
   * stands as the snapshot (call it after a round of changes); later calls,
   * the transactions applied since. A no-op without a bucket (replication off).
   */
  publish(): Promise<void>;
  /** Rolling checksum and txid of the copy. */
  state(): Promise<{ checksum: bigint; txid: number | null }>;
  /** Stamp the new epoch (a transaction of its own), publish the rest of the pending generation, put the file in place. */
  finish(epoch: number): Promise<void>;
  /** After the directory switch: the target is the primary (its replicator resumes the pending generation). */
  activate(): Promise<void>;
  /** Abort: delete everything received, the pending generation's objects included. */
  discard(): Promise<void>;
}

/** One move's two ends. */
export interface MoveEnds {
  source: MoveSource;
  target: MoveTarget;
}

/** Opens both ends of a move. */
export interface MoveTransport {
  connect(move: MoveEndpoints): MoveEnds;
}

/** What one move connects. */
export interface MoveEndpoints {
  moveId: string;
  source: ShardRef;
  target: ShardRef;
  /** The target region's bucket (undefined with replication off): the pending generation goes there. */
  targetBucket?: ObjectStore | undefined;
  /** A target node in another process (cluster): the target end is reached over HTTP. */
  remote?: { url: string; nodeId: string; clusterSecret: string };
}

/** What the in-process source needs from the runtime. */
export interface LocalSourceDeps {
  gate: TenantGate;
  /** `pool.exclusive`: runs `fn` with the tenant's queue held and its handles closed. */
  exclusive<T>(ref: ShardRef, fn: () => Promise<T>): Promise<T>;
  /** Waits the grace period (none when `now`) for the tenant's open interactive transactions, then rolls back the rest (TENANT_MOVING). */
  endSessions(tenant: string, now: boolean): Promise<void>;
  /** Holds the replicator's checkpoints of the tenant (checkpoint-holds.ts); returns the release. */
  holdCheckpoints(tenant: string): () => void;
  /** `replicator.stop` (undefined with replication off). */
  stopReplication(tenant: string): Promise<void>;
  /** After a switch to a target in this process: start its replication (`replicator.notify`). */
  notifyTarget?(ref: ShardRef): void;
  /** The pool: lends the follower its descriptor of the source's database file (@domicile/shard live-file.ts). */
  liveFiles?: LiveFileLender;
}

/** The source end in this process. */
export class LocalMoveSource implements MoveSource {
  readonly #ref: ShardRef;
  readonly #deps: LocalSourceDeps;
  readonly #follower: WalFollower;
  #releaseHold: (() => void) | undefined;
  /** Resolves the exclusive section (ends the shard hold). */
  #releaseShard: (() => void) | undefined;
  #held: Promise<unknown> | undefined;
  #gateClosed = false;

  constructor(ref: ShardRef, deps: LocalSourceDeps) {
    this.#ref = ref;
    this.#deps = deps;
    const lender = deps.liveFiles;
    const file = { tenant: ref.tenant, path: ref.path };
    this.#follower = new WalFollower(ref.path, lender ? { liveFile: { borrow: () => lender.borrowLiveFile(file), giveBack: (fd) => lender.returnLiveFile(fd) } } : {});
  }

  async open(): Promise<SnapshotInfo> {
    this.#releaseHold = this.#deps.holdCheckpoints(this.#ref.tenant);
    return this.#follower.open();
  }

  snapshot(): AsyncIterable<Uint8Array> {
    return this.#follower.snapshot();
  }

  async changes(): Promise<ShardChanges | null> {
    return this.#follower.changes();
  }

  async fence(): Promise<void> {
    const tenant = this.#ref.tenant;
    this.#deps.gate.close(tenant);
    this.#gateClosed = true;
    await this.#deps.endSessions(tenant, false);
    await this.#deps.gate.drained(tenant);
    // A request that was in flight may have opened a transaction after the first round.
    await this.#deps.endSessions(tenant, true);
    await this.#deps.gate.drained(tenant);
    let entered!: () => void;
    const inside = new Promise<void>((r) => { entered = r; });
    this.#held = this.#deps.exclusive(this.#ref, () => {
      entered();
      return new Promise<void>((r) => { this.#releaseShard = r; });
    });
    // The exclusive section may fail before it starts (pool closing): surface that instead of waiting forever.
    await Promise.race([inside, this.#held.then(() => { throw new DomicileError('INTERNAL', 'the shard hold ended before it began'); })]);
  }

  async state(): Promise<{ checksum: bigint; txid: number }> {
    return { checksum: this.#follower.checksum, txid: this.#follower.txid() };
  }

  async stopReplication(): Promise<void> {
    await this.#deps.stopReplication(this.#ref.tenant);
  }

  async handOff(): Promise<void> {
    this.#follower.close();
    // Out of the way at once (a synchronous rename: inside the fence nothing waits for the busy
    // libuv pool), deleted after the gate opened: the pause does not pay for unlinking a large file.
    const trash: string[] = [];
    for (const s of ['', '-wal', '-shm', '-journal']) {
      const to = `${this.#ref.path}${s}.moved-${process.pid}-${Date.now()}`;
      try {
        renameSync(this.#ref.path + s, to);
        trash.push(to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    await this.#release();
    // The pool reported the source ref when the hold ended (onCommit): drop that shipper before any
    // request reaches the new primary (stop() forgets it at once; its pass ends on the missing file),
    // so the new epoch starts a shipper of its own, in its own region's bucket.
    const stopping = this.#deps.stopReplication(this.#ref.tenant).catch(() => undefined);
    this.#openGate();
    void stopping.then(async () => {
      for (const f of trash) await rm(f, { force: true }).catch(() => undefined);
    });
  }

  async unfence(): Promise<void> {
    this.#follower.close();
    await this.#release();
    this.#openGate();
  }

  async #release(): Promise<void> {
    this.#releaseHold?.();
    this.#releaseHold = undefined;
    this.#releaseShard?.();
    this.#releaseShard = undefined;
    const held = this.#held;
    this.#held = undefined;
    await held?.catch(() => undefined);
  }

  #openGate(): void {
    if (!this.#gateClosed) return;
    this.#gateClosed = false;
    this.#deps.gate.open(this.#ref.tenant);
  }
}

/** The target end in this process. */
export class LocalMoveTarget implements MoveTarget {
  readonly #rx: ShardReceiver;
  readonly #pending: PendingGeneration | undefined;
  readonly #onActivate: (() => void) | undefined;
  constructor(ref: ShardRef, moveId: string, bucket?: ObjectStore, onActivate?: () => void) {
    this.#rx = new ShardReceiver(ref.path, moveId);
    this.#onActivate = onActivate;
    this.#pending = bucket ? new PendingGeneration(bucket, { tenant: ref.tenant, incarnation: ref.incarnation, epoch: ref.epoch }) : undefined;
  }
  begin(info: SnapshotInfo): Promise<void> { return this.#rx.begin(info); }
  write(chunk: Uint8Array): Promise<void> { return this.#rx.write(chunk); }
  apply(changes: ShardChanges): Promise<void> { return this.#rx.apply(changes); }
  sync(): Promise<void> { return this.#rx.sync(); }
  async publish(): Promise<void> {
    const pending = this.#pending;
    if (!pending) return;
    if (pending.snapshotTxid === undefined) {
      const { checksum, pageHash } = this.#rx.markSnapshot();
      await pending.putSnapshot(this.#rx.tmpPath, checksum, pageHash);
    } else {
      await pending.putSegment(this.#rx.takeBatch());
    }
  }
  async state(): Promise<{ checksum: bigint; txid: number | null }> {
    const meta = await this.#rx.meta();
    return { checksum: this.#rx.checksum, txid: meta?.txid ?? null };
  }
  async finish(epoch: number): Promise<void> {
    await this.#rx.stamp(epoch);
    if (this.#pending?.snapshotTxid !== undefined) await this.#pending.putSegment(this.#rx.takeBatch());
    await this.#rx.install();
  }
  async activate(): Promise<void> {
    this.#onActivate?.();
  }
  async discard(): Promise<void> {
    try {
      await this.#rx.discard();
    } finally {
      await this.#pending?.discard();
    }
  }
}

/** The source in this process; the target in this process (the embedded default) or another (a cluster). */
export class LocalMoveTransport implements MoveTransport {
  readonly #deps: LocalSourceDeps;
  constructor(deps: LocalSourceDeps) {
    this.#deps = deps;
  }
  connect(move: MoveEndpoints): MoveEnds {
    const source = new LocalMoveSource(move.source, this.#deps);
    if (move.remote) {
      const { tenant, incarnation, epoch } = move.target;
      return { source, target: new HttpMoveTarget({ ...move.remote, moveId: move.moveId, tenant, incarnation, epoch }) };
    }
    return { source, target: new LocalMoveTarget(move.target, move.moveId, move.targetBucket, () => this.#deps.notifyTarget?.(move.target)) };
  }
}
