import { createHash, createHmac } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import type { HttpRequest } from '@smithy/core/protocols';
import { describe, expect, it } from 'vitest';
import { encodeKeyPath, LEAN_FAILURES_BEFORE_OFF, LeanPut, LeanPuts, type LeanAttempt, type LeanPutClient, type LeanPutResult } from './lean-put.ts';

const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

/** A real client's configuration (endpoint rules, credentials, hash) with an HTTP handler that answers `status` or throws. */
function clientWith(opts: { region: string; endpoint?: string; answer: (req: HttpRequest) => number }): { client: LeanPutClient; sent: HttpRequest[] } {
  const real = new S3Client({
    region: opts.region,
    ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint, forcePathStyle: true }),
    credentials: { ...CREDS },
  });
  const sent: HttpRequest[] = [];
  const config = real.config as unknown as LeanPutClient['config'];
  const client: LeanPutClient = {
    config: {
      credentials: config.credentials,
      sha256: config.sha256,
      systemClockOffset: 0,
      endpointProvider: config.endpointProvider.bind(config),
      region: config.region,
      useFipsEndpoint: config.useFipsEndpoint,
      useDualstackEndpoint: config.useDualstackEndpoint,
      requestHandler: {
        async handle(req) {
          sent.push(req);
          return { response: { statusCode: opts.answer(req), body: undefined } };
        },
      },
    },
  };
  return { client, sent };
}

const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const hmac = (key: Buffer | string, s: string) => createHmac('sha256', key).update(s).digest();

/**
 * The SigV4 signature of `req`, computed here from AWS's specification (not
 * with the SDK): canonical request, string to sign, derived key. s3rver does
 * not verify signatures, so this is what proves the lean put's.
 */
function expectedSignature(req: HttpRequest, secret: string): string {
  const auth = req.headers.authorization!;
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
  expect(m, auth).not.toBeNull();
  const [, , day, region, service, signedHeaders] = m!;
  const names = signedHeaders!.split(';');
  expect(names).toEqual([...names].sort());
  const canonicalHeaders = names.map((n) => `${n}:${String(req.headers[n]).trim()}\n`).join('');
  const canonical = ['PUT', req.path, '', canonicalHeaders, signedHeaders, req.headers['x-amz-content-sha256']].join('\n');
  const amzDate = req.headers['x-amz-date']!;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, `${day}/${region}/${service}/aws4_request`, hex(canonical)].join('\n');
  let key = hmac(`AWS4${secret}`, day!);
  for (const part of [region!, service!, 'aws4_request']) key = hmac(key, part);
  return createHmac('sha256', key).update(toSign).digest('hex');
}

describe('encodeKeyPath', () => {
  it('encodes each segment as S3 expects and keeps the slashes', () => {
    expect(encodeKeyPath('tenants/t1/inc/generations/0001-g/segments/0002.seg')).toBe('tenants/t1/inc/generations/0001-g/segments/0002.seg');
    expect(encodeKeyPath("a b/c+d/ü/!'()*/%41/~_-.x")).toBe('a%20b/c%2Bd/%C3%BC/%21%27%28%29%2A/%2541/~_-.x');
  });
});

describe('LeanPut', () => {
  it('resolves a path-style endpoint and a virtual-hosted AWS one', async () => {
    const path = await LeanPut.forClient(clientWith({ region: 'eu-west-1', endpoint: 'http://127.0.0.1:9000', answer: () => 200 }).client, {
      bucket: 'bkt', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true,
    });
    expect(path instanceof LeanPut && path.endpoint).toEqual({
      protocol: 'http:', hostname: '127.0.0.1', port: 9000, host: '127.0.0.1:9000', basePath: '/bkt', signingName: 's3', signingRegion: 'eu-west-1',
    });
    const aws = await LeanPut.forClient(clientWith({ region: 'eu-west-1', answer: () => 200 }).client, { bucket: 'bkt', endpoint: undefined, forcePathStyle: false });
    expect(aws instanceof LeanPut && aws.endpoint).toEqual({
      protocol: 'https:', hostname: 'bkt.s3.eu-west-1.amazonaws.com', port: undefined, host: 'bkt.s3.eu-west-1.amazonaws.com', basePath: '', signingName: 's3', signingRegion: 'eu-west-1',
    });
  });

  it('leaves an endpoint from AWS_ENDPOINT_URL to the SDK', async () => {
    const saved = process.env.AWS_ENDPOINT_URL;
    process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:1';
    try {
      const r = await LeanPut.forClient(clientWith({ region: 'eu-west-1', answer: () => 200 }).client, { bucket: 'bkt', endpoint: undefined, forcePathStyle: false });
      expect(r).toEqual({ unsupported: expect.stringContaining('AWS_ENDPOINT_URL') });
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL;
      else process.env.AWS_ENDPOINT_URL = saved;
    }
  });

  it('sends one signed PUT: the encoded key, the body, its SHA-256, If-None-Match; a valid SigV4 signature', async () => {
    const { client, sent } = clientWith({ region: 'eu-west-1', endpoint: 'http://127.0.0.1:9000', answer: () => 200 });
    const lean = await LeanPut.forClient(client, { bucket: 'bkt', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true });
    if (!(lean instanceof LeanPut)) throw new Error('no lean put');
    const body = Buffer.from('segment bytes');
    expect(await lean.put('p/t 1/seg+1', body, true)).toBe('stored');
    expect(await lean.put('p/t 1/seg+2', body, false)).toBe('stored');
    expect(sent).toHaveLength(2);
    const [first, second] = sent;
    expect(first!.method).toBe('PUT');
    expect(`${first!.protocol}//${first!.hostname}:${first!.port}${first!.path}`).toBe('http://127.0.0.1:9000/bkt/p/t%201/seg%2B1');
    expect(first!.body).toBe(body);
    expect(first!.headers['content-length']).toBe(String(body.length));
    expect(first!.headers['x-amz-content-sha256']).toBe(hex(body));
    expect(first!.headers['if-none-match']).toBe('*');
    expect(second!.headers['if-none-match']).toBeUndefined();
    for (const req of sent) {
      const signedHeaders = /SignedHeaders=([^,]+)/.exec(req.headers.authorization!)![1]!.split(';');
      expect(signedHeaders).toEqual(expect.arrayContaining(['host', 'x-amz-content-sha256', 'x-amz-date']));
      expect(req.headers.authorization).toContain(`Credential=${CREDS.accessKeyId}/`);
      expect(req.headers.authorization).toContain('/eu-west-1/s3/aws4_request');
      expect(/Signature=([0-9a-f]{64})$/.exec(req.headers.authorization!)![1]).toBe(expectedSignature(req, CREDS.secretAccessKey));
    }
    // The oracle is not blind: another secret gives another signature.
    expect(/Signature=([0-9a-f]{64})$/.exec(first!.headers.authorization!)![1]).not.toBe(expectedSignature(first!, 'another-secret'));
  });

  it('knows 200 and 412; anything else, or a failure to send, is a retry', async () => {
    const answers = [200, 412, 503, 403];
    const { client } = clientWith({
      region: 'us-east-1', endpoint: 'http://127.0.0.1:9000',
      answer: () => {
        const a = answers.shift();
        if (a === undefined) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { code: 'ECONNREFUSED' });
        return a;
      },
    });
    const lean = await LeanPut.forClient(client, { bucket: 'bkt', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true });
    if (!(lean instanceof LeanPut)) throw new Error('no lean put');
    const results: LeanPutResult[] = [];
    for (let i = 0; i < 5; i++) results.push(await lean.put(`k${i}`, Buffer.from('x'), true));
    expect(results).toEqual(['stored', 'exists', { retry: 'HTTP 503' }, { retry: 'HTTP 403' }, { retry: 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9000' }]);
  });
});

describe('LeanPuts', () => {
  /** A lean put answering from a script; records the keys it was given. */
  function scripted(script: LeanPutResult[]): LeanAttempt & { keys: string[] } {
    const keys: string[] = [];
    return {
      keys,
      async put(key) {
        keys.push(key);
        return script.shift() ?? 'stored';
      },
    };
  }

  it('counts lean puts, and makes none when off', async () => {
    const lean = scripted(['stored', 'exists']);
    const puts = new LeanPuts(async () => lean);
    expect(await puts.attempt('a', Buffer.from('x'), false)).toBe('stored');
    expect(await puts.attempt('b', Buffer.from('x'), true)).toBe('exists');
    expect(puts.stats).toEqual({ lean: 2, sdk: 0, leanFailures: 0, leanOff: undefined });

    const never = scripted([]);
    const off = new LeanPuts(async () => never, 'leanPut=false');
    expect(await off.attempt('a', Buffer.from('x'), false)).toBeNull();
    expect(never.keys).toEqual([]);
    expect(off.stats.leanOff).toBe('leanPut=false');

    const unsupported = new LeanPuts(async () => ({ unsupported: 'the endpoint\'s auth scheme is sigv4a' }));
    expect(await unsupported.attempt('a', Buffer.from('x'), false)).toBeNull();
    expect(unsupported.stats.leanOff).toBe('the endpoint\'s auth scheme is sigv4a');
  });

  it('after a failure makes no attempt until the command stores a put; stops after failures in a row', async () => {
    const lean = scripted([{ retry: 'HTTP 503' }, 'stored', ...Array.from({ length: LEAN_FAILURES_BEFORE_OFF }, () => ({ retry: 'HTTP 400' }))]);
    const turnedOff: string[] = [];
    const puts = new LeanPuts(async () => lean, undefined, (reason) => turnedOff.push(reason));
    expect(await puts.attempt('1', Buffer.from('x'), false)).toBeNull();
    // Suspended: the store may be down; the command's own attempts (and their failures) decide.
    expect(await puts.attempt('2', Buffer.from('x'), false)).toBeNull();
    expect(lean.keys).toEqual(['1']);
    puts.commandStored();
    expect(await puts.attempt('3', Buffer.from('x'), false)).toBe('stored');
    for (let i = 0; i < LEAN_FAILURES_BEFORE_OFF; i++) {
      expect(await puts.attempt(`f${i}`, Buffer.from('x'), false)).toBeNull();
      puts.commandStored();
    }
    expect(puts.stats.leanOff).toBe(`${LEAN_FAILURES_BEFORE_OFF} lean puts failed in a row (last: HTTP 400)`);
    expect(turnedOff).toEqual([puts.stats.leanOff]);
    expect(await puts.attempt('after', Buffer.from('x'), false)).toBeNull();
    expect(lean.keys).not.toContain('after');
    expect(puts.stats).toMatchObject({ lean: 1, leanFailures: 1 + LEAN_FAILURES_BEFORE_OFF });
  });

  it('counts the lean attempts in flight when a store goes down as one failure, not one each', async () => {
    // Eight tenants' uploads in flight on one store when its server dies: all eight lean attempts fail together.
    let fail!: () => void;
    const down = new Promise<void>((r) => { fail = r; });
    const lean: LeanAttempt = { async put() { await down; return { retry: 'ECONNRESET' }; } };
    const puts = new LeanPuts(async () => lean);
    const inFlight = Array.from({ length: 8 }, (_, i) => puts.attempt(`k${i}`, Buffer.from('x'), false));
    fail();
    expect(await Promise.all(inFlight)).toEqual(Array.from({ length: 8 }, () => null));
    expect(puts.stats).toEqual({ lean: 0, sdk: 0, leanFailures: 8, leanOff: undefined });
    // Back: the command stores a put, and the lean path is tried again.
    puts.commandStored();
    lean.put = async () => 'stored';
    expect(await puts.attempt('again', Buffer.from('x'), false)).toBe('stored');
  });
});
