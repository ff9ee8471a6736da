/**
 * Which generation of a tenant holds a restore target (used by the online
 * restore route and the offline `domicile restore --from`): the newest
 * generation with a snapshot that holds it — for a txid, the one whose range
 * covers it; for a time, the newest that started at or before it (a later
 * one started after that moment; the restore then stops at the last
 * transaction committed by then); for `latest`, the newest.
 */
import { DomicileError } from '@domicile/errors';
import type { GenerationInfo } from './restore.ts';
import type { RestoreTarget } from './restore.ts';

/** A generation in messages. */
export function describeGeneration(g: GenerationInfo): string {
  return `${g.generation} (epoch ${g.epoch}, txids ${g.firstTxid}..${g.lastTxid}, ${g.snapshots.length} snapshots)`;
}

/** See the module comment. BACKUP_INVALID when no generation has a snapshot; BAD_REQUEST (with the available range) when none holds the target. */
export function chooseGeneration(gens: readonly GenerationInfo[], target: RestoreTarget, where: string): GenerationInfo {
  const usable = gens.filter((g) => g.snapshots.length > 0);
  const holds = (g: GenerationInfo): boolean => {
    if (target === 'latest') return true;
    if ('txid' in target) return g.snapshots[0]!.txid <= target.txid && target.txid <= g.lastTxid;
    const t = typeof target.time === 'number' ? target.time : target.time.getTime();
    return g.snapshots[0]!.time <= t;
  };
  const g = usable.filter(holds).at(-1);
  if (g) return g;
  if (usable.length === 0) throw new DomicileError('BACKUP_INVALID', `no generation in ${where} has a snapshot to restore from`, { generations: gens.map(describeGeneration) });
  const what = target === 'latest' ? 'the newest state' : 'txid' in target ? `txid ${target.txid}` : `time ${new Date(target.time).toISOString()}`;
  const first = usable[0]!;
  const last = usable.at(-1)!;
  throw new DomicileError('BAD_REQUEST', `no backup holds ${what}; available: txids ${first.snapshots[0]!.txid}..${last.lastTxid}, ${new Date(first.snapshots[0]!.time).toISOString()} .. ${new Date(last.lastTime || last.snapshots.at(-1)!.time).toISOString()}`, {
    available: {
      firstTxid: first.snapshots[0]!.txid, lastTxid: last.lastTxid,
      firstTime: new Date(first.snapshots[0]!.time).toISOString(), lastTime: new Date(last.lastTime || last.snapshots.at(-1)!.time).toISOString(),
    },
  });
}
