import { randomUUID } from 'node:crypto';
import * as fsc from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { DomicileError, isDomicileError } from '@domicile/errors';
import {
  compareKeys,
  objectAlreadyExists,
  objectNotFound,
  storeUnavailable,
  validateKey,
  validatePrefix,
  type ListEntry,
  type ListOptions,
  type ObjectBody,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from '../object-store.ts';

/**
 * Temp files live in one directory under the root so that a rename into place
 * stays on one filesystem (atomic) and a crash leaves debris in one known spot.
 * Its name starts with `.`, which no key segment may, so it never lists.
 */
const TMP_DIR = '.domicile-tmp';

/** errno codes that mean "there is no object here" when reading. */
const MISSING = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/** How many times a put retries after a concurrent delete pruned its target directory. */
const PRUNE_RACE_RETRIES = 5;

/** Directories a store remembers as existing (a put into one skips its mkdir); forgotten all at once past this. */
const KNOWN_DIRS_MAX = 4096;

/** Concurrency of {@link FsObjectStore.deleteMany}. */
const DELETE_CONCURRENCY = 16;

/**
 * {@link ObjectStore} in a local directory (`file:///abs/path`), the embedded
 * default bucket. Key `a/b/c` is the file `<root>/a/b/c`. Because a key is a
 * file, a key cannot also be a "directory" of other keys (`a` and `a/b`): such
 * a put fails with BAD_REQUEST (`details.reason = 'key-conflict'`). Domicile's
 * key layout never does this.
 */
export class FsObjectStore implements ObjectStore {
  readonly supportsConditionalCreate = true;
  readonly #root: string;
  readonly #url: string;
  /**
   * Directories this store made or found (a put's mkdir is two of its ~11
   * filesystem calls). A directory pruned by another process is noticed by
   * the link or rename failing with ENOENT, which forgets it and makes it again.
   */
  readonly #knownDirs = new Set<string>();

  /** `root` must be absolute; it is created on the first put. */
  constructor(root: string) {
    if (!path.isAbsolute(root)) {
      throw new DomicileError('BAD_REQUEST', `Filesystem bucket root must be an absolute path, got ${JSON.stringify(root)}.`);
    }
    this.#root = path.resolve(root);
    this.#url = pathToFileURL(this.#root).href;
  }

  /** Absolute directory holding the objects. */
  get root(): string {
    return this.#root;
  }

  describe(): string {
    return this.#url;
  }

  close(): void {
    // Nothing held open between calls.
  }

  async put(key: string, body: ObjectBody, opts: PutOptions = {}): Promise<void> {
    validateKey(key);
    const target = this.#path(key);
    const tmpDir = path.join(this.#root, TMP_DIR);
    const tmp = path.join(tmpDir, `${randomUUID()}.partial`);
    await this.#io('put', () => this.#mkdirs(tmpDir));
    let placed = false;
    try {
      await this.#writeDurably(tmp, body);
      for (let attempt = 0; ; attempt++) {
        try {
          await this.#mkdirs(path.dirname(target));
          // link() fails with EEXIST if the target exists, atomically: the
          // write-once check and the create are one step. rename() replaces.
          if (opts.ifNoneMatch) await link(tmp, target);
          else await rename(tmp, target);
          placed = !opts.ifNoneMatch;
          break;
        } catch (err) {
          const code = errno(err);
          // A concurrent delete may prune the directory between mkdir and the
          // link/rename (or since this store last made it); make it again.
          if (code === 'ENOENT') this.#knownDirs.clear();
          if (code === 'ENOENT' && attempt < PRUNE_RACE_RETRIES) continue;
          if (code === 'EEXIST' && opts.ifNoneMatch) {
            if ((await stat(target).catch(() => null))?.isDirectory()) throw keyConflict(this.#url, key, err);
            throw objectAlreadyExists(this.#url, key, err);
          }
          if (code === 'EISDIR' || code === 'ENOTDIR' || code === 'EEXIST' || code === 'ENOTEMPTY') {
            throw keyConflict(this.#url, key, err);
          }
          throw storeUnavailable(this.#url, 'put', err, { key });
        }
      }
      await this.#io('put', () => fsyncDir(path.dirname(target)), key);
    } finally {
      if (!placed) await unlink(tmp).catch(() => undefined);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    validateKey(key);
    try {
      return await readFile(this.#path(key));
    } catch (err) {
      throw await this.#readError('get', key, err);
    }
  }

  async getStream(key: string): Promise<Readable> {
    validateKey(key);
    let fh: FileHandle | undefined;
    try {
      fh = await open(this.#path(key), 'r');
      // Opening a directory for reading succeeds on Linux; it is not an object.
      if (!(await fh.stat()).isFile()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      return fh.createReadStream();
    } catch (err) {
      await fh?.close().catch(() => undefined);
      throw await this.#readError('getStream', key, err);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key);
    try {
      const st = await stat(this.#path(key));
      return st.isFile() ? { size: st.size, lastModified: st.mtime } : null;
    } catch (err) {
      if (MISSING.has(errno(err) ?? '')) {
        await this.#assertRootUsable('head', err);
        return null;
      }
      throw storeUnavailable(this.#url, 'head', err, { key });
    }
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ListEntry> {
    validatePrefix(prefix);
    // Start at the deepest directory the prefix names in full; its last
    // partial segment filters that directory's entries.
    const slash = prefix.lastIndexOf('/');
    yield* this.#walk(prefix.slice(0, slash + 1), prefix.slice(slash + 1), opts.startAfter);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    const file = this.#path(key);
    try {
      await unlink(file);
    } catch (err) {
      const code = errno(err);
      // EISDIR/EPERM: a directory of other keys, not an object; nothing to delete.
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'EPERM') {
        await this.#assertRootUsable('delete', err);
        return;
      }
      throw storeUnavailable(this.#url, 'delete', err, { key });
    }
    await this.#pruneEmptyParents(path.dirname(file));
  }

  async deleteMany(keys: Iterable<string>): Promise<void> {
    const all = [...keys];
    for (const k of all) validateKey(k);
    let next = 0;
    const failures: unknown[] = [];
    const worker = async (): Promise<void> => {
      while (next < all.length) {
        const key = all[next++]!;
        await this.delete(key).catch((err: unknown) => failures.push(err));
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, all.length) }, worker));
    if (failures.length > 0) {
      throw storeUnavailable(this.#url, `deleteMany (${failures.length} of ${all.length} keys)`, failures[0], {
        failed: failures.length,
      });
    }
  }

  #path(key: string): string {
    // validateKey has ruled out `..`, absolute keys and backslashes; this check
    // is the last line of defence against a path leaving the root.
    const p = path.join(this.#root, ...key.split('/'));
    if (!p.startsWith(this.#root + path.sep)) {
      throw new DomicileError('BAD_REQUEST', `Object key ${JSON.stringify(key)} escapes the bucket root.`, { key });
    }
    return p;
  }

  async #writeDurably(file: string, body: ObjectBody): Promise<void> {
    const create = async <T>(openIt: () => Promise<T>): Promise<T> => this.#io('put', async () => {
      try {
        return await openIt();
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw err;
        // The temp directory was removed since this store made it (the bucket wiped by hand?).
        this.#knownDirs.clear();
        await this.#mkdirs(path.dirname(file));
        return openIt();
      }
    });
    if (body instanceof Uint8Array) {
      // A segment: plain descriptor calls, not a FileHandle (its object, close tracking and
      // promises): a put's CPU over a plain durable write fell from 1.5–2.2× to 1.2–1.6×
      // (`pnpm bench:object-store`, loadtest/RESULTS.md).
      const fd = await create(() => fdOpen(file, 'wx', 0o644));
      try {
        await this.#io('put', async () => {
          for (let done = 0; done < body.byteLength;) {
            const n = await fdWrite(fd, body, done, body.byteLength - done);
            if (n <= 0) throw new Error(`write returned ${n}`);
            done += n;
          }
        });
        // fsync before the link: a crash must never expose a placed but empty file.
        await this.#io('put', () => fdSync(fd));
      } finally {
        await fdClose(fd).catch(() => undefined);
      }
      return;
    }
    const fh = await create(() => open(file, 'wx', 0o644));
    try {
      // Errors of the caller's stream propagate unchanged: they are not the store's.
      for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        await this.#io('put', () => fh.write(bytes));
      }
      // fsync before the rename: a crash must never expose a renamed but empty file.
      await this.#io('put', () => fh.sync());
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async *#walk(dirKey: string, namePrefix: string, startAfter: string | undefined): AsyncGenerator<ListEntry> {
    let entries;
    try {
      entries = await readdir(path.join(this.#root, ...dirKey.split('/')), { withFileTypes: true });
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') {
        await this.#assertRootUsable('list', err);
        return;
      }
      throw storeUnavailable(this.#url, 'list', err, { prefix: dirKey + namePrefix });
    }
    // Sort a directory as "name/" so that its keys interleave with sibling files
    // exactly as S3 orders full keys ("a-c" < "a/b" because "-" < "/").
    const sorted = entries
      .filter((e) => !e.name.startsWith('.') && e.name.startsWith(namePrefix) && (e.isFile() || e.isDirectory()))
      .map((e) => ({ name: e.name, dir: e.isDirectory(), sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const e of sorted) {
      const key = dirKey + e.sortKey;
      if (e.dir) {
        if (startAfter !== undefined && compareKeys(key, startAfter) < 0 && !startAfter.startsWith(key)) continue;
        yield* this.#walk(key, '', startAfter);
        continue;
      }
      if (startAfter !== undefined && compareKeys(key, startAfter) <= 0) continue;
      let st;
      try {
        st = await stat(path.join(this.#root, ...key.split('/')));
      } catch (err) {
        if (errno(err) === 'ENOENT') continue; // deleted while listing
        throw storeUnavailable(this.#url, 'list', err, { prefix: dirKey + namePrefix });
      }
      yield { key, size: st.size, lastModified: st.mtime };
    }
  }

  /** `mkdir -p dir`, skipped for a directory this store made or found before. */
  async #mkdirs(dir: string): Promise<void> {
    if (this.#knownDirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    if (this.#knownDirs.size >= KNOWN_DIRS_MAX) this.#knownDirs.clear();
    this.#knownDirs.add(dir);
  }

  /** Remove directories left empty by a delete, up to (not including) the root; stops at the first non-empty one. */
  async #pruneEmptyParents(dir: string): Promise<void> {
    while (dir.startsWith(this.#root + path.sep)) {
      try {
        this.#knownDirs.delete(dir);
        await rmdir(dir);
      } catch {
        return;
      }
      dir = path.dirname(dir);
    }
  }

  async #io<T>(what: string, fn: () => Promise<T>, key?: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isDomicileError(err)) throw err;
      throw storeUnavailable(this.#url, what, err, key === undefined ? {} : { key });
    }
  }

  async #readError(what: string, key: string, err: unknown): Promise<DomicileError> {
    if (isDomicileError(err)) return err;
    if (MISSING.has(errno(err) ?? '')) {
      await this.#assertRootUsable(what, err);
      return objectNotFound(this.#url, key);
    }
    return storeUnavailable(this.#url, what, err, { key });
  }

  /**
   * A miss means "no such object" only if the root is a usable directory (or
   * does not exist yet: an empty bucket). A root below a file, or one we may
   * not read, is an outage: throw REPLICATION_UNAVAILABLE with the miss as cause.
   */
  async #assertRootUsable(what: string, miss: unknown): Promise<void> {
    try {
      const st = await stat(this.#root);
      if (st.isDirectory()) return;
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      throw storeUnavailable(this.#url, what, err);
    }
    throw storeUnavailable(this.#url, what, miss, { reason: 'root-not-a-directory' });
  }
}

function errno(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function keyConflict(store: string, key: string, cause: unknown): DomicileError {
  return new DomicileError(
    'BAD_REQUEST',
    `Object key ${JSON.stringify(key)} conflicts with another key in ${store}: on the filesystem a key cannot also be a folder of keys.`,
    { reason: 'key-conflict', store, key },
    { cause },
  );
}

const fdOpen = promisify(fsc.open);
const fdSync = promisify(fsc.fsync);
const fdClose = promisify(fsc.close);
/** `fs.write` of part of a buffer at the file's position; resolves with the bytes written. */
const fdWrite = (fd: number, data: Uint8Array, offset: number, length: number): Promise<number> =>
  new Promise((resolve, reject) => fsc.write(fd, data, offset, length, null, (err, written) => (err ? reject(err) : resolve(written))));

/** fsync a directory so that a rename or link in it survives a crash. */
async function fsyncDir(dir: string): Promise<void> {
  const fd = await fdOpen(dir, 'r');
  try {
    await fdSync(fd);
  } finally {
    await fdClose(fd);
  }
}
