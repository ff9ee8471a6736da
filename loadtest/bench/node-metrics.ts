/**
 * A Domicile node's `/metrics` (Prometheus text format), read by the
 * benchmarks: one scrape, then sums, maxima and per-label values of its
 * samples. Comment lines (`# HELP`, `# TYPE`) are skipped; label values are
 * taken as written (the node's never hold quotes or commas).
 */

/** One sample line: metric name, labels, value. */
export interface MetricSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)/;
const LABEL = /(\w+)="([^"]*)"/g;

/** The samples of one scrape. */
export class NodeMetrics {
  readonly samples: readonly MetricSample[];

  constructor(text: string) {
    const samples: MetricSample[] = [];
    for (const line of text.split('\n')) {
      const m = SAMPLE.exec(line);
      if (!m) continue;
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!;
      samples.push({ name: m[1]!, labels, value: Number(m[3]) });
    }
    this.samples = samples;
  }

  /** Samples of `name` whose labels include every one of `match`. */
  #of(name: string, match: Readonly<Record<string, string>> = {}): MetricSample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  }

  /** Sum over the samples of `name` (matching `match`); 0 when there are none. */
  sum(name: string, match?: Readonly<Record<string, string>>): number {
    return this.#of(name, match).reduce((a, s) => a + s.value, 0);
  }

  /** Largest sample of `name`; 0 when there are none. */
  max(name: string): number {
    return this.#of(name).reduce((a, s) => Math.max(a, s.value), 0);
  }

  /** The one unlabelled sample of `name`; NaN when there is none. */
  value(name: string): number {
    return this.samples.find((s) => s.name === name && Object.keys(s.labels).length === 0)?.value ?? NaN;
  }

  /** Value of each sample of `name` by its `label`. */
  byLabel(name: string, label: string): Map<string, number> {
    return new Map(this.#of(name).flatMap((s) => (s.labels[label] === undefined ? [] : [[s.labels[label]!, s.value] as const])));
  }
}

/** Scrape the node at `url`. */
export async function scrapeMetrics(url: string): Promise<NodeMetrics> {
  return new NodeMetrics(await (await fetch(`${url}/metrics`)).text());
}
