import { PassThrough, Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type _Object,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { DomicileError, isDomicileError } from '@domicile/errors';
import {
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
import { LeanPut, LeanPuts, type S3PutStats } from './lean-put.ts';

/** Static credentials; without them the standard AWS chain applies (env `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profile, IMDS, ...). */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Settings of an {@link S3ObjectStore}; everything but `bucket` has a default. */
export interface S3ObjectStoreOptions {
  /** Bucket name. */
  bucket: string;
  /** Key prefix inside the bucket: `''` or ending with `/`. */
  prefix?: string;
  /** S3-compatible endpoint (`http://127.0.0.1:9000`); unset: AWS. */
  endpoint?: string;
  /** Signing region. Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`. */
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`). Default: true when an endpoint is set. */
  forcePathStyle?: boolean;
  /** Static credentials; default: the AWS credential chain. */
  credentials?: S3Credentials;
  /** Attempts per request, first included (SDK standard retry with jittered backoff). Default 3. */
  maxAttempts?: number;
  /** TCP connect timeout per attempt. Default 2000 ms, so a dead endpoint is reported within seconds. */
  connectTimeoutMs?: number;
  /** Socket idle timeout per attempt. Default 30000 ms. */
  requestTimeoutMs?: number;
  /** Bodies larger than this (and streams of unknown length) go up as multipart uploads. Default 16 MiB. */
  multipartThreshold?: number;
  /** Part size of multipart uploads; at least 5 MiB (S3's minimum). Default 8 MiB. */
  partSize?: number;
  /** Parts uploaded in parallel (memory: queueSize × partSize). Default 4. */
  queueSize?: number;
  /**
   * Single-request puts through {@link LeanPut} (the SDK's signer and HTTP
   * handler without the command's middleware) first, the SDK command when
   * that fails. Default true; false sends every put through the command.
   */
  leanPut?: boolean;
}

const MiB = 1024 * 1024;
const S3_MIN_PART = 5 * MiB;
/** DeleteObjects takes at most 1000 keys per request. */
const DELETE_BATCH = 1000;

/**
 * {@link ObjectStore} on S3 or an S3-compatible server. Conditional create is
 * sent as `If-None-Match: *` (PutObject and CompleteMultipartUpload); AWS S3
 * enforces it, s3rver ignores it and overwrites.
 */
export class S3ObjectStore implements ObjectStore {
  readonly supportsConditionalCreate = true;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #url: string;
  readonly #multipartThreshold: number;
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #lean: LeanPuts;

  constructor(opts: S3ObjectStoreOptions) {
    const prefix = opts.prefix ?? '';
    if (prefix !== '') validatePrefix(prefix);
    if (prefix !== '' && !prefix.endsWith('/')) {
      throw new DomicileError('BAD_REQUEST', `S3 prefix must end with "/", got ${JSON.stringify(prefix)}.`);
    }
    const partSize = opts.partSize ?? 8 * MiB;
    if (!(partSize >= S3_MIN_PART)) {
      throw new DomicileError('BAD_REQUEST', `S3 partSize must be at least ${S3_MIN_PART} bytes, got ${partSize}.`);
    }
    for (const [name, v] of Object.entries({
      maxAttempts: opts.maxAttempts,
      connectTimeoutMs: opts.connectTimeoutMs,
      requestTimeoutMs: opts.requestTimeoutMs,
      multipartThreshold: opts.multipartThreshold,
      queueSize: opts.queueSize,
    })) {
      if (v !== undefined && !(Number.isInteger(v) && v > 0)) {
        throw new DomicileError('BAD_REQUEST', `S3 option ${name} must be a positive integer, got ${String(v)}.`);
      }
    }
    this.#bucket = opts.bucket;
    this.#prefix = prefix;
    this.#multipartThreshold = opts.multipartThreshold ?? 16 * MiB;
    this.#partSize = partSize;
    this.#queueSize = opts.queueSize ?? 4;
    const region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    const forcePathStyle = opts.forcePathStyle ?? opts.endpoint !== undefined;
    this.#url = describeS3({ bucket: opts.bucket, prefix, endpoint: opts.endpoint, region, forcePathStyle });
    this.#client = new S3Client({
      region,
      ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
      forcePathStyle,
      // A copy: the SDK annotates the credentials object and fails on a frozen one.
      ...(opts.credentials === undefined ? {} : { credentials: { ...opts.credentials } }),
      maxAttempts: opts.maxAttempts ?? 3,
      requestHandler: {
        connectionTimeout: opts.connectTimeoutMs ?? 2000,
        requestTimeout: opts.requestTimeoutMs ?? 30_000,
      },
      // The SDK's default (WHEN_SUPPORTED) sends aws-chunked bodies with
      // trailing checksums; S3-compatibles such as s3rver store that chunk
      // framing inside the object. Only checksum what S3 demands.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Resolve each command's middleware stack once per client instead of per request: a node
      // ships a segment per busy tenant every few hundred ms, and the resolution was ~8 % of a
      // PutObject's CPU. (Per-call options, which we never pass, bypass the cache.)
      cacheMiddleware: true,
    });
    const client = this.#client;
    const url = this.#url;
    this.#lean = new LeanPuts(
      () => LeanPut.forClient(client, { bucket: opts.bucket, endpoint: opts.endpoint, forcePathStyle }),
      opts.leanPut === false ? 'leanPut=false' : undefined,
      // A library has no logger: Node prints a process warning on stderr (once per store).
      (reason) => process.emitWarning(`${url}: puts go through the AWS SDK's command from now on: ${reason}`, { code: 'DOMICILE_LEAN_PUT_OFF' }),
    );
  }

  describe(): string {
    return this.#url;
  }

  /** Release the client's sockets. The store is unusable afterwards. */
  close(): void {
    this.#client.destroy();
  }

  /** Counts of this store's puts by path; see {@link S3PutStats}. */
  get putStats(): Readonly<S3PutStats> {
    return this.#lean.stats;
  }

  async put(key: string, body: ObjectBody, opts: PutOptions = {}): Promise<void> {
    validateKey(key);
    const Key = this.#prefix + key;
    const IfNoneMatch = opts.ifNoneMatch ? '*' : undefined;
    if (body instanceof Uint8Array && body.byteLength <= this.#multipartThreshold) {
      // One request without the command's middleware (lean-put.ts); the command when it fails.
      const lean = await this.#lean.attempt(Key, body, opts.ifNoneMatch === true);
      if (lean === 'exists') throw objectAlreadyExists(this.#url, key);
      if (lean === 'stored') return;
    }
    this.#lean.commandPut();
    try {
      const length = body instanceof Uint8Array ? body.byteLength : opts.contentLength;
      if (length !== undefined && length <= this.#multipartThreshold) {
        await this.#client.send(
          new PutObjectCommand({ Bucket: this.#bucket, Key, Body: body, ContentLength: length, IfNoneMatch }),
        );
        this.#lean.commandStored();
        return;
      }
      // lib-storage passes IfNoneMatch on to CompleteMultipartUpload and
      // aborts the multipart upload when a part fails.
      const upload = new Upload({
        client: this.#client,
        params: { Bucket: this.#bucket, Key, Body: body, IfNoneMatch },
        partSize: this.#partSize,
        queueSize: this.#queueSize,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (err) {
      if (isPreconditionFailed(err)) throw objectAlreadyExists(this.#url, key, err);
      throw this.#fail('put', err, { key });
    }
  }

  async get(key: string): Promise<Uint8Array> {
    validateKey(key);
    try {
      const out = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }));
      if (!out.Body) return new Uint8Array(0);
      return await out.Body.transformToByteArray();
    } catch (err) {
      if (isMissingObject(err)) throw objectNotFound(this.#url, key);
      throw this.#fail('get', err, { key });
    }
  }

  async getStream(key: string): Promise<Readable> {
    validateKey(key);
    let body: Readable;
    try {
      const out = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }));
      if (!out.Body) return Readable.from([]);
      body = out.Body as Readable;
    } catch (err) {
      if (isMissingObject(err)) throw objectNotFound(this.#url, key);
      throw this.#fail('getStream', err, { key });
    }
    // Re-emit transport errors of the body as our own coded error.
    const pass = new PassThrough();
    body.on('error', (err) => pass.destroy(this.#fail('getStream', err, { key })));
    pass.on('close', () => {
      if (!body.destroyed) body.destroy();
    });
    return body.pipe(pass);
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key);
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }));
      return {
        size: out.ContentLength ?? 0,
        ...(out.ETag === undefined ? {} : { etag: out.ETag }),
        lastModified: out.LastModified ?? new Date(0),
      };
    } catch (err) {
      if (isMissingObject(err)) return null;
      throw this.#fail('head', err, { key });
    }
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncIterable<ListEntry> {
    validatePrefix(prefix);
    let token: string | undefined;
    let startAfter = opts.startAfter === undefined ? undefined : this.#prefix + opts.startAfter;
    do {
      let page;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: this.#prefix + prefix,
            MaxKeys: 1000,
            ContinuationToken: token,
            StartAfter: token === undefined ? startAfter : undefined,
          }),
        );
      } catch (err) {
        throw this.#fail('list', err, { prefix });
      }
      for (const o of page.Contents ?? ([] as _Object[])) {
        if (o.Key === undefined) continue;
        yield { key: o.Key.slice(this.#prefix.length), size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      startAfter = undefined;
    } while (token !== undefined);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      // S3 answers 204 for a missing key; some compatibles answer 404.
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }));
    } catch (err) {
      if (isMissingObject(err)) return;
      throw this.#fail('delete', err, { key });
    }
  }

  async deleteMany(keys: Iterable<string>): Promise<void> {
    const all = [...keys];
    for (const k of all) validateKey(k);
    let failed = 0;
    let firstError: unknown;
    for (let i = 0; i < all.length; i += DELETE_BATCH) {
      const batch = all.slice(i, i + DELETE_BATCH);
      try {
        const out = await this.#client.send(
          new DeleteObjectsCommand({
            Bucket: this.#bucket,
            Delete: { Objects: batch.map((k) => ({ Key: this.#prefix + k })), Quiet: true },
          }),
        );
        const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
        failed += errors.length;
        firstError ??= errors[0];
      } catch (err) {
        throw this.#fail('deleteMany', err, { deleted: i });
      }
    }
    if (failed > 0) {
      const e = firstError as { Key?: string; Code?: string; Message?: string } | undefined;
      const cause = Object.assign(new Error(`${e?.Code ?? 'Error'}: ${e?.Message ?? ''} (${e?.Key ?? '?'})`), {
        code: e?.Code,
      });
      throw storeUnavailable(this.#url, `deleteMany (${failed} of ${all.length} keys)`, cause, { failed });
    }
  }

  #fail(what: string, err: unknown, details: Record<string, unknown>): DomicileError {
    if (isDomicileError(err)) return err;
    return storeUnavailable(this.#url, what, err, { reason: classify(err), ...details });
  }
}

/** Redacted, canonical URL of an S3 store: no credentials, only known parameters. */
export function describeS3(o: {
  bucket: string;
  prefix: string;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
}): string {
  const q = new URLSearchParams();
  if (o.endpoint !== undefined) q.set('endpoint', redactEndpoint(o.endpoint));
  q.set('region', o.region);
  if (o.forcePathStyle) q.set('forcePathStyle', 'true');
  return `s3://${o.bucket}/${o.prefix}?${q.toString()}`;
}

function redactEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.href.replace(/\/$/, '');
  } catch {
    return '<invalid endpoint>';
  }
}

interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  Code?: unknown;
  $metadata?: { httpStatusCode?: number };
}

function statusOf(err: unknown): number | undefined {
  return (err as SdkErrorShape | null)?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string | undefined {
  const e = err as SdkErrorShape | null;
  const n = e?.name ?? e?.Code;
  return typeof n === 'string' ? n : undefined;
}

function isMissingObject(err: unknown): boolean {
  const name = nameOf(err);
  if (name === 'NoSuchBucket') return false; // a missing bucket is an outage, not a missing object
  return name === 'NoSuchKey' || name === 'NotFound' || statusOf(err) === 404;
}

function isPreconditionFailed(err: unknown): boolean {
  return nameOf(err) === 'PreconditionFailed' || statusOf(err) === 412;
}

/** A short, log-friendly reason for an S3 failure. */
function classify(err: unknown): string {
  const status = statusOf(err);
  const name = nameOf(err);
  const code = (err as SdkErrorShape | null)?.code;
  if (name === 'NoSuchBucket') return 'no-such-bucket';
  if (status === 401 || status === 403) return 'access-denied';
  if (name === 'CredentialsProviderError') return 'no-credentials';
  if (name === 'TimeoutError' || code === 'ETIMEDOUT' || name === 'RequestTimeout') return 'timeout';
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return 'network';
  if (status !== undefined) return `http-${status}`;
  return 'error';
}
