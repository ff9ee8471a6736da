/**
 * Messages between the pool (main thread) and a shard worker. Everything here
 * is structured-clone safe: values are already wire values and errors travel
 * as `SerializedError`.
 */
import type { SerializedError } from '@domicile/errors';
import type { CloseReason } from './handle-cache.ts';
import type { ExecOptions, ShardRef, Statement, StatementResult } from './types.ts';

/** `workerData` of a shard worker. */
export interface WorkerInit {
  index: number;
  /** This worker's share of the process-wide handle bound. */
  maxOpenShards: number;
  statementTimeoutMs: number;
  maxResultBytes: number;
  maxDbBytes: number;
}

/** Main → worker. */
export type WorkerRequest =
  | { id: number; type: 'query'; ref: ShardRef; statement: Statement; opts: ExecOptions }
  | { id: number; type: 'batch'; ref: ShardRef; statements: Statement[]; opts: ExecOptions }
  | { id: number; type: 'create'; ref: ShardRef }
  | { id: number; type: 'close-tenant'; tenant: string; reason: CloseReason }
  | { id: number; type: 'close-all' }
  /** Test hook: throw an uncaught exception inside the worker. */
  | { id: number; type: 'crash' };

/** Counters a worker reports with every reply. */
export interface WorkerCounters {
  open: number;
  opens: number;
  evictions: number;
  interrupts: number;
  /** Tenants whose handle closed on this worker since its previous reply. */
  closed: string[];
}

/** Worker → main. */
export type WorkerReply =
  | { kind: 'reply'; id: number; ok: true; value: StatementResult | StatementResult[] | number | null; counters: WorkerCounters }
  | { kind: 'reply'; id: number; ok: false; error: SerializedError; counters: WorkerCounters }
  | { kind: 'ready' }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> };
