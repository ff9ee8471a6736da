/**
 * The region buckets this process knows (DESIGN §1, §6a): one ObjectStore per
 * region, from `DOMICILE_BUCKETS`. Parsed and validated at start, so a bad
 * entry stops the server before it listens; stores connect lazily.
 */
import { openObjectStore, parseBuckets, type ObjectStore } from '@domicile/object-store';

/** One region's bucket. */
export interface RegionBucket {
  region: string;
  /** The store; S3 connects on first use. */
  store: ObjectStore;
  /** Redacted URL (`store.describe()`), for logs and error details. */
  url: string;
  /** The URL as configured (may carry credentials: never log it), for a worker thread that opens its own store (restore). */
  source: string;
  /** True when `DOMICILE_BUCKETS` named it; false for the `file://<dataDir>/buckets/<region>` default. */
  configured: boolean;
}

/** Options of {@link RegionBuckets.open}. */
export interface RegionBucketsOptions {
  /** `DOMICILE_BUCKETS` as given (`region=url,...`). */
  spec: string | undefined;
  /** Every region of the policy, in policy order. */
  policyRegions: readonly string[];
  /** Regions this process serves (every region on the embedded default). */
  servedRegions: readonly string[];
  dataDir: string;
}

/**
 * Which regions get a bucket: every served region (its default is the
 * filesystem bucket under the data dir), plus any other region the spec names
 * explicitly. A one-region node does not invent a filesystem bucket for a
 * region it does not serve: that directory would not be the region's real
 * bucket, and erasing there would prove nothing.
 */
export class RegionBuckets {
  readonly #byRegion: ReadonlyMap<string, RegionBucket>;

  private constructor(byRegion: Map<string, RegionBucket>) {
    this.#byRegion = byRegion;
  }

  /** Parse, validate and open. Throws BAD_REQUEST naming the entry (`DOMICILE_BUCKETS: ...`). */
  static open(opts: RegionBucketsOptions): RegionBuckets {
    const urls = parseBuckets(opts.spec, opts.policyRegions, opts.dataDir);
    const named = new Set(explicitRegions(opts.spec));
    const out = new Map<string, RegionBucket>();
    try {
      for (const [region, url] of urls) {
        if (!opts.servedRegions.includes(region) && !named.has(region)) continue;
        const store = openObjectStore(url);
        out.set(region, { region, store, url: store.describe(), source: url, configured: named.has(region) });
      }
    } catch (err) {
      for (const b of out.values()) b.store.close();
      throw err;
    }
    return new RegionBuckets(out);
  }

  /** The bucket of `region`, or undefined when this process knows none for it. */
  get(region: string): RegionBucket | undefined {
    return this.#byRegion.get(region);
  }

  /** Every known bucket, in policy order. */
  all(): RegionBucket[] {
    return [...this.#byRegion.values()];
  }

  /** Release every store's sockets. Idempotent. */
  close(): void {
    for (const b of this.#byRegion.values()) b.store.close();
  }
}

/** Region names the spec lists (already validated by parseBuckets). */
function explicitRegions(spec: string | undefined): string[] {
  return (spec ?? '').split(/,(?=\s*[^,=\s]+\s*=)/)
    .map((e) => e.trim())
    .filter((e) => e.includes('='))
    .map((e) => e.slice(0, e.indexOf('=')).trim());
}
