/**
 * The replication bench's modes (`pnpm bench:replication --modes …`): one
 * node per mode. `off-again` is a second node without replication (the
 * method's own noise); `async-b` is a second async node with the
 * `--node-env-b` or `--bucket-params-b` settings (an A/B test within one
 * run), so it exists only with them and is never part of the default set.
 */
export const REPLICATION_MODES = ['off', 'async', 'async-fs', 'async-b', 'sync', 'off-again'] as const;
export type ReplicationMode = (typeof REPLICATION_MODES)[number];

/** The modes of a run without `--modes`: all but async-b. */
export const DEFAULT_MODES: readonly ReplicationMode[] = REPLICATION_MODES.filter((m) => m !== 'async-b');

/**
 * The modes of a run: `--modes` (a comma-separated list; off is always added,
 * the ratios need it) or the default. Throws an Error whose message names the
 * problem: an unknown mode, or async-b without `--node-env-b` or
 * `--bucket-params-b` settings (or the settings without async-b).
 */
export function selectModes(modes: string | undefined, hasSettingsB: boolean): Set<ReplicationMode> {
  const names = modes === undefined ? [...DEFAULT_MODES] : ['off', ...modes.split(',')];
  for (const m of names) {
    if (!(REPLICATION_MODES as readonly string[]).includes(m)) throw new Error(`unknown mode ${JSON.stringify(m)} in --modes (known: ${REPLICATION_MODES.join(', ')})`);
  }
  const set = new Set(names as ReplicationMode[]);
  if (set.has('async-b') !== hasSettingsB) throw new Error('async-b (in --modes) and --node-env-b or --bucket-params-b go together: async-b is async with those settings');
  return set;
}
