import type { Readable } from 'node:stream';
import { DomicileError, isDomicileError, type ErrorDetails } from '@domicile/errors';

/** Body accepted by {@link ObjectStore.put}: bytes in memory, or a stream read to its end. */
export type ObjectBody = Uint8Array | Readable;

/** Options of {@link ObjectStore.put}. */
export interface PutOptions {
  /**
   * Write once: refuse to replace an existing object (S3 `If-None-Match: *`).
   * The refusal is an error for which {@link isAlreadyExists} is true. Stores
   * that ignore the condition (s3rver, some S3-compatibles) overwrite silently;
   * {@link ObjectStore.supportsConditionalCreate} says which kind a store is.
   */
  ifNoneMatch?: boolean;
  /**
   * Byte length of a stream body when known. Lets the S3 store send a stream as
   * one request instead of a multipart upload; ignored for `Uint8Array` bodies.
   */
  contentLength?: number;
}

/** What {@link ObjectStore.head} knows about an object. */
export interface ObjectInfo {
  /** Size in bytes. */
  size: number;
  /** Entity tag as the store reports it (S3: quoted MD5 or multipart tag); absent on the filesystem. */
  etag?: string;
  /** Time of the last write. */
  lastModified: Date;
}

/** One entry of {@link ObjectStore.list}. */
export interface ListEntry {
  /** Key relative to the store's root (the S3 prefix of the URL is not part of it). */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Time of the last write. */
  lastModified: Date;
}

/** Options of {@link ObjectStore.list}. */
export interface ListOptions {
  /** Only keys strictly after this key (lexical byte order), e.g. to resume a listing. */
  startAfter?: string;
}

/**
 * The object store of one region's bucket (DESIGN §1, §8): a flat namespace of
 * immutable objects named by `/`-separated keys. Implementations: a directory
 * (`file:///abs/path`) and S3 (`s3://bucket/prefix?...`); both pass the one
 * contract suite in `object-store.contract.ts`.
 *
 * Errors: every method throws only DomicileErrors, classified by `code`:
 * - `BAD_REQUEST` for a key that {@link validateKey} refuses (nothing touched);
 * - `NOT_FOUND` with `details.reason = 'not-found'` for a missing object where
 *   the method says so ({@link isNotFound});
 * - `INTERNAL` with `details.reason = 'already-exists'` for a refused write-once
 *   put ({@link isAlreadyExists});
 * - `REPLICATION_UNAVAILABLE` (`details.store` = {@link describe}) whenever the
 *   store cannot be reached or fails: connection refused, timeouts, 5xx, denied
 *   credentials, a missing bucket, a broken or full disk. The third-party error
 *   is kept as `cause`.
 *
 * Keys are validated the same way by every store (see {@link validateKey}) so
 * that code tested against the filesystem store behaves the same on S3.
 */
export interface ObjectStore {
  /**
   * Store `body` under `key`, replacing any object there unless `ifNoneMatch`.
   * Readers never see a partial object: the filesystem store writes a temp file,
   * fsyncs it and renames (or links, for `ifNoneMatch`) it into place; S3 makes
   * an object visible only when its upload completes. A stream body is read to
   * its end; big bodies and streams of unknown length go up as S3 multipart uploads.
   */
  put(key: string, body: ObjectBody, opts?: PutOptions): Promise<void>;

  /** The whole object. Missing → throws NOT_FOUND ({@link isNotFound}). */
  get(key: string): Promise<Uint8Array>;

  /**
   * The object as a stream. Missing → the returned promise rejects with
   * NOT_FOUND ({@link isNotFound}) before any stream exists; a failure after
   * that surfaces as a stream error.
   */
  getStream(key: string): Promise<Readable>;

  /** Size and etag of the object. Missing → `null` (not an error). */
  head(key: string): Promise<ObjectInfo | null>;

  /**
   * Every object whose key starts with `prefix` (`''` for all), in lexical
   * (UTF-8 byte) order, across any number of pages (S3 pages of 1000 are
   * followed transparently). A prefix matching nothing yields nothing; the
   * filesystem store also yields nothing when its root does not exist yet.
   */
  list(prefix: string, opts?: ListOptions): AsyncIterable<ListEntry>;

  /** Remove the object. Idempotent: a missing object is not an error. */
  delete(key: string): Promise<void>;

  /**
   * Remove many objects (S3: DeleteObjects in batches of 1000). Idempotent like
   * {@link delete}. If any key fails, throws REPLICATION_UNAVAILABLE naming the
   * number of failures; objects already removed stay removed.
   */
  deleteMany(keys: Iterable<string>): Promise<void>;

  /** Release sockets and other resources (S3 client); the store is unusable afterwards. Idempotent. */
  close(): void;

  /** The store's URL with credentials and unknown query parameters removed: safe for logs and errors. */
  describe(): string;

  /** Whether `put(..., {ifNoneMatch: true})` is enforced (filesystem: yes; S3: assumed yes, s3rver ignores it). */
  readonly supportsConditionalCreate: boolean;
}

/** Longest key accepted, in UTF-8 bytes (S3's own limit is 1024 including the URL prefix). */
export const MAX_KEY_BYTES = 900;

/**
 * Throw BAD_REQUEST unless `key` is a safe object key: non-empty, at most
 * {@link MAX_KEY_BYTES} bytes, `/`-separated segments that are non-empty and do
 * not start with `.` (this rules out `.`, `..` and the filesystem store's temp
 * files), no leading or trailing `/`, no backslash, no NUL or other control
 * character. Applied by every store so that keys portable to one are portable to all.
 */
export function validateKey(key: string): void {
  const bad = keyProblem(key, false);
  if (bad) throw new DomicileError('BAD_REQUEST', `Invalid object key ${JSON.stringify(key)}: ${bad}.`, { key });
}

/** Like {@link validateKey} for a list prefix: may be empty and may end with `/`. */
export function validatePrefix(prefix: string): void {
  const bad = keyProblem(prefix, true);
  if (bad) throw new DomicileError('BAD_REQUEST', `Invalid object key prefix ${JSON.stringify(prefix)}: ${bad}.`, { prefix });
}

function keyProblem(key: string, isPrefix: boolean): string | undefined {
  if (typeof key !== 'string') return 'not a string';
  if (key === '') return isPrefix ? undefined : 'empty';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'contains NUL or a control character';
  if (key.includes('\\')) return 'contains a backslash';
  if (key.startsWith('/')) return 'is absolute (starts with /)';
  const segments = key.split('/');
  if (isPrefix && segments.at(-1) === '') segments.pop();
  else if (segments.at(-1) === '') return 'ends with /';
  for (const s of segments) {
    if (s === '') return 'contains an empty segment (//)';
    if (s === '..') return 'contains a .. segment';
    if (s.startsWith('.')) return 'has a segment starting with "."';
  }
  return undefined;
}

/** Build the NOT_FOUND error of a missing object. */
export function objectNotFound(store: string, key: string): DomicileError {
  return new DomicileError('NOT_FOUND', `Object ${JSON.stringify(key)} not found in ${store}.`, {
    reason: 'not-found',
    store,
    key,
  });
}

/** Build the error of a refused write-once put. */
export function objectAlreadyExists(store: string, key: string, cause?: unknown): DomicileError {
  return new DomicileError(
    'INTERNAL',
    `Object ${JSON.stringify(key)} already exists in ${store}; objects are written once.`,
    { reason: 'already-exists', store, key },
    cause === undefined ? undefined : { cause },
  );
}

/** Build the REPLICATION_UNAVAILABLE error of a store that failed; `cause` is the third-party error. */
export function storeUnavailable(store: string, what: string, cause: unknown, details: ErrorDetails = {}): DomicileError {
  const why = describeCause(cause);
  return new DomicileError(
    'REPLICATION_UNAVAILABLE',
    `Bucket ${store} unavailable: ${what} failed${why ? `: ${why}` : ''}.`,
    { store, ...details },
    { cause },
  );
}

function describeCause(cause: unknown): string {
  if (typeof cause !== 'object' || cause === null) return '';
  const c = cause as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof c.code === 'string' ? c.code : typeof c.name === 'string' && c.name !== 'Error' ? c.name : '';
  const msg = typeof c.message === 'string' ? c.message : '';
  return [code, msg].filter(Boolean).join(' ').slice(0, 300);
}

/** True when `err` is the "object missing" error of an {@link ObjectStore}. */
export function isNotFound(err: unknown): boolean {
  return isDomicileError(err) && err.code === 'NOT_FOUND' && err.details.reason === 'not-found';
}

/** True when `err` is a write-once put refused because the object exists. */
export function isAlreadyExists(err: unknown): boolean {
  return isDomicileError(err) && err.details.reason === 'already-exists';
}

/** Compare keys in S3's lexical order (UTF-8 bytes), which differs from JS `<` for astral characters. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
