/**
 * Reading a live shard's database file outside SQLite without losing its locks.
 *
 * SQLite locks database files with POSIX advisory locks (`fcntl`), and those
 * belong to the process and the file, not to a descriptor: closing *any*
 * descriptor of the file in this process drops every lock the process holds
 * on it, SQLite's included. SQLite does not notice (it keeps its lock state in
 * memory) and never takes them again while its connections stay open. In WAL
 * mode each connection holds a shared lock on the database file for its whole
 * life; without it another process can lock the file exclusively — for
 * instance a tool that opens a live shard with `PRAGMA locking_mode=EXCLUSIVE`
 * — and write into the log under the node's connections. Measured on this
 * stack: that process's write succeeded, it removed the `-wal` on close, and a
 * row was lost (docs/shards.md, "Files and locks").
 *
 * So a reader of a live database file outside SQLite (the replication
 * shippers, a generation's snapshot copy, a move's follower) never opens or
 * closes one itself: it borrows the pool's descriptor of the file
 * (`ShardPool.borrowLiveFile`), reads at explicit positions, and gives it back.
 * The pool keeps one descriptor per file ({@link LiveFileDescriptors}) and
 * closes it only when nobody has it borrowed and no worker has the tenant
 * open. A SQLite connection to a live shard outside the pool's workers (a
 * move's follower pins the source with read transactions) holds a borrow for
 * its whole life, so that the pool's descriptor outlives it too. The `-wal`,
 * which SQLite does not lock this way, is opened and closed as usual.
 */
import { closeSync, fstatSync, openSync, readSync, statSync, writeSync } from 'node:fs';

/**
 * Lends descriptors of live database files (`ShardPool` is one): `borrowLiveFile` gives an open
 * descriptor of `file.path` for reads at explicit positions, `returnLiveFile` takes it back. Never
 * close a borrowed descriptor.
 */
export interface LiveFileLender {
  borrowLiveFile(file: { tenant: string; path: string }): number;
  returnLiveFile(fd: number): void;
}

/** Bytes copied per read by {@link copyFromDescriptor}. */
const COPY_CHUNK = 1 << 20;

/**
 * Copy the file open at `fd` (from its start, whatever its offset) to `dest`,
 * created or replaced, without closing `fd`: for a copy of a live database
 * file, where `fs.copyFileSync` would close a descriptor of its own.
 */
export function copyFromDescriptor(fd: number, dest: string): void {
  const to = openSync(dest, 'w');
  try {
    const buf = Buffer.allocUnsafe(COPY_CHUNK);
    for (let at = 0; ;) {
      const n = readSync(fd, buf, 0, buf.byteLength, at);
      if (n === 0) break;
      for (let done = 0; done < n;) done += writeSync(to, buf, done, n - done, at + done);
      at += n;
    }
  } finally {
    closeSync(to);
  }
}

/** One descriptor the pool holds on a live database file. */
interface LiveFile {
  readonly fd: number;
  readonly path: string;
  readonly tenant: string;
  /** Identity of the file the descriptor is open on (a restore in place swaps the file under the path). */
  readonly dev: bigint;
  readonly ino: bigint;
  borrowed: number;
}

/**
 * The pool's descriptors of live database files: at most one current one per
 * path, lent to any number of readers at once (they read at explicit
 * positions). A descriptor closes once it is given back by every borrower
 * and its tenant has no open handle (`hasHandles`); one whose path now names
 * another file (a restore in place swapped it) closes as soon as it is given
 * back — the locks of that other file are not touched by closing it.
 */
export class LiveFileDescriptors {
  readonly #current = new Map<string, LiveFile>();
  readonly #byFd = new Map<number, LiveFile>();
  readonly #byTenant = new Map<string, Set<LiveFile>>();
  readonly #hasHandles: (tenant: string) => boolean;
  #allClosed = false;

  /** `hasHandles(tenant)`: whether any SQLite connection of this process may have the tenant's files open. */
  constructor(hasHandles: (tenant: string) => boolean) {
    this.#hasHandles = hasHandles;
  }

  /** A descriptor of `ref.path` for reads, open until {@link giveBack}. Throws as `openSync` does (ENOENT: no file). */
  borrow(ref: { tenant: string; path: string }): number {
    let f = this.#current.get(ref.path);
    if (f) {
      const now = statSync(ref.path, { bigint: true, throwIfNoEntry: false });
      if (!now || now.dev !== f.dev || now.ino !== f.ino) {
        // Another file under the path (a restore in place), or none: the old one's descriptor goes once given back.
        this.#current.delete(ref.path);
        this.#maybeClose(f);
        f = undefined;
      }
    }
    if (!f) {
      const fd = openSync(ref.path, 'r');
      const st = fstatSync(fd, { bigint: true });
      f = { fd, path: ref.path, tenant: ref.tenant, dev: st.dev, ino: st.ino, borrowed: 0 };
      this.#current.set(ref.path, f);
      this.#byFd.set(fd, f);
      let set = this.#byTenant.get(ref.tenant);
      if (!set) this.#byTenant.set(ref.tenant, (set = new Set()));
      set.add(f);
    }
    f.borrowed++;
    return f.fd;
  }

  /** Give back a descriptor from {@link borrow}. Unknown descriptors are ignored. */
  giveBack(fd: number): void {
    const f = this.#byFd.get(fd);
    if (!f || f.borrowed === 0) return;
    f.borrowed--;
    this.#maybeClose(f);
  }

  /** The tenant has no open handle any more: close its descriptors nobody borrows. */
  tenantClosed(tenant: string): void {
    const set = this.#byTenant.get(tenant);
    if (!set) return;
    for (const f of [...set]) this.#maybeClose(f);
  }

  /** Every handle of the pool is closed (shutdown): nothing is left to protect. */
  allClosed(): void {
    this.#allClosed = true;
    for (const f of [...this.#byFd.values()]) this.#maybeClose(f);
  }

  #maybeClose(f: LiveFile): void {
    if (f.borrowed > 0) return;
    const current = this.#current.get(f.path) === f;
    if (current && !this.#allClosed && this.#hasHandles(f.tenant)) return;
    if (current) this.#current.delete(f.path);
    this.#byFd.delete(f.fd);
    const set = this.#byTenant.get(f.tenant);
    set?.delete(f);
    if (set?.size === 0) this.#byTenant.delete(f.tenant);
    try {
      closeSync(f.fd);
    } catch {
      // EBADF: nothing to release.
    }
  }
}
