import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isDomicileError } from '@domicile/errors';
import { FsObjectStore } from './fs/fs-object-store.ts';
import { openObjectStore, parseBucketUrl, parseBuckets, redactUrl } from './parse-bucket-url.ts';
import { S3ObjectStore } from './s3/s3-object-store.ts';

function errorOf(fn: () => unknown): { code: unknown; message: string } {
  try {
    fn();
  } catch (err) {
    if (isDomicileError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected an error');
}

describe('parseBucketUrl', () => {
  it('reads a file URL as an absolute root', () => {
    expect(parseBucketUrl('file:///var/lib/domicile/buckets/eu-west')).toEqual({
      kind: 'file',
      root: '/var/lib/domicile/buckets/eu-west',
    });
    expect(parseBucketUrl('file:///tmp/with%20space')).toEqual({ kind: 'file', root: '/tmp/with space' });
  });

  it('reads an s3 URL with endpoint, region, path style and timeouts', () => {
    expect(
      parseBucketUrl(
        's3://my-bucket/some/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1&forcePathStyle=true&leanPut=false&maxAttempts=2&connectTimeoutMs=500',
      ),
    ).toEqual({
      kind: 's3',
      options: {
        bucket: 'my-bucket',
        prefix: 'some/prefix/',
        endpoint: 'http://127.0.0.1:9000',
        region: 'eu-west-1',
        forcePathStyle: true,
        leanPut: false,
        maxAttempts: 2,
        connectTimeoutMs: 500,
      },
    });
    expect(parseBucketUrl('s3://my-bucket')).toEqual({ kind: 's3', options: { bucket: 'my-bucket', prefix: '' } });
  });

  it.each([
    ['not a url', /not a URL/],
    ['http://example.com/x', /unsupported scheme "http"/],
    ['file://relative/path', /host "relative"/],
    ['file:///tmp/x?a=1', /no query parameters/],
    ['s3://Bad_Bucket/x', /bucket name "bad_bucket"|bucket name "Bad_Bucket"/],
    ['s3://bucket:9000/x', /port 9000/],
    ['s3://bucket/x?endpoint=ftp://h', /endpoint must be an http/],
    ['s3://bucket/x?regoin=eu', /unknown query parameter "regoin"/],
    ['s3://bucket/x?forcePathStyle=yes', /forcePathStyle must be true or false/],
    ['s3://bucket/x?leanPut=1', /leanPut must be true or false/],
    ['s3://bucket/x?maxAttempts=0', /maxAttempts must be a positive integer/],
    ['s3://bucket/a/.hidden', /prefix "a\/.hidden\/"/],
    ['s3://bucket/x#frag', /fragment/],
  ])('refuses %s, naming the bad part', (url, why) => {
    const e = errorOf(() => parseBucketUrl(url));
    expect(e.code).toBe('BAD_REQUEST');
    expect(e.message).toMatch(why);
  });

  it('refuses credentials in the URL without echoing them', () => {
    const e = errorOf(() => parseBucketUrl('s3://AKIA:topsecret@bucket/x'));
    expect(e.message).toMatch(/credentials do not belong/);
    expect(e.message).not.toContain('topsecret');
    expect(redactUrl('s3://AKIA:topsecret@bucket/x?token=abc&region=eu')).not.toMatch(/topsecret|abc/);
  });
});

describe('openObjectStore', () => {
  it('dispatches on the scheme', () => {
    const fsStore = openObjectStore('file:///tmp/domicile-open-test');
    expect(fsStore).toBeInstanceOf(FsObjectStore);
    expect(fsStore.describe()).toBe('file:///tmp/domicile-open-test');
    const s3 = openObjectStore('s3://bkt/p?endpoint=http://127.0.0.1:1&region=us-east-1', {
      s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } },
    });
    expect(s3).toBeInstanceOf(S3ObjectStore);
    // forcePathStyle defaults to true when an endpoint is given
    expect(s3.describe()).toBe('s3://bkt/p/?endpoint=http%3A%2F%2F127.0.0.1%3A1&region=us-east-1&forcePathStyle=true');
    s3.close();
  });
});

describe('parseBuckets (DOMICILE_BUCKETS)', () => {
  const regions = ['eu-west', 'eu-central', 'us-east'];

  it('defaults every region to a folder under the data dir', () => {
    const m = parseBuckets(undefined, regions, './data');
    expect([...m.keys()]).toEqual(regions);
    expect(m.get('eu-west')).toBe(`file://${path.resolve('data/buckets/eu-west')}`);
    expect(parseBuckets('', regions, '/srv/d').get('us-east')).toBe('file:///srv/d/buckets/us-east');
  });

  it('takes the listed regions from the spec and defaults the rest', () => {
    const m = parseBuckets(
      ' eu-west=s3://eu-bucket/dom?endpoint=http://127.0.0.1:9000&region=eu-west-1 , us-east=file:///mnt/us,',
      regions,
      '/srv/d',
    );
    expect(Object.fromEntries(m)).toEqual({
      'eu-west': 's3://eu-bucket/dom?endpoint=http://127.0.0.1:9000&region=eu-west-1',
      'eu-central': 'file:///srv/d/buckets/eu-central',
      'us-east': 'file:///mnt/us',
    });
  });

  it.each([
    ['ap-south=file:///x', /unknown region "ap-south"/],
    ['eu-west=file:///a,eu-west=file:///b', /"eu-west" is listed twice/],
    ['eu-west', /is not region=url/],
    ['eu-west=', /empty URL/],
    ['eu-west=s3://bkt/x?bogus=1', /region "eu-west": .*unknown query parameter "bogus"/],
    ['eu-west=file:///same,us-east=file:///same', /"eu-west" and "us-east" share the bucket/],
  ])('refuses %s, naming the entry', (spec, why) => {
    const e = errorOf(() => parseBuckets(spec, regions, '/srv/d'));
    expect(e.code).toBe('BAD_REQUEST');
    expect(e.message).toMatch(/^DOMICILE_BUCKETS: /);
    expect(e.message).toMatch(why);
  });
});
