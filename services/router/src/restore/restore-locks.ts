/**
 * Which tenants have a restore running on this process (source ids and fork
 * ids): a second restore answers 409 RESTORE_IN_PROGRESS, and a move or an
 * erase of such a tenant waits for it (the same code), so a restore never
 * swaps a file into a tenant that is leaving or gone.
 */
import { DomicileError } from '@domicile/errors';

const running = new Set<string>();

/** True while a restore of (or into) `tenant` runs on this process. */
export function restoreRunning(tenant: string): boolean {
  return running.has(tenant);
}

/** 409 RESTORE_IN_PROGRESS naming `tenant`. */
export function restoreInProgress(tenant: string, then: string): DomicileError {
  return new DomicileError('RESTORE_IN_PROGRESS', `a restore of tenant "${tenant}" is running; ${then}`, { tenant });
}

/** Claim every id of `tenants` for one restore, or throw RESTORE_IN_PROGRESS and claim none; returns the release. */
export function claimRestore(tenants: readonly string[]): () => void {
  for (const t of tenants) if (running.has(t)) throw restoreInProgress(t, 'wait for it');
  for (const t of tenants) running.add(t);
  return () => { for (const t of tenants) running.delete(t); };
}
