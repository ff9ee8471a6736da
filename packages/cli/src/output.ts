import { isDomicileError } from '@domicile/errors';
import { isUsageError } from './exit-codes.ts';
import type { CliIo } from './io.ts';

/** Output switches every command accepts. */
export interface OutputOptions {
  /** Exactly one JSON document on stdout, nothing else there. */
  json?: boolean;
  /** No notes or progress on stderr, no confirmations on stdout; data and errors still print. */
  quiet?: boolean;
}

/**
 * Where a command's output goes. Human mode: data on stdout, notes and
 * progress on stderr. JSON mode: one document on stdout (the result, or
 * `{"error":{...}}`), notes still on stderr.
 */
export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly #io: CliIo;
  #printedDocument = false;

  constructor(io: CliIo, opts: OutputOptions) {
    this.#io = io;
    this.json = opts.json === true;
    this.quiet = opts.quiet === true;
  }

  /** True when stderr is a terminal and progress may be drawn on it. */
  get interactive(): boolean {
    return !this.json && !this.quiet && this.#io.stderr.isTTY === true;
  }

  /** The stream progress bars draw on. */
  get progressStream() {
    return this.#io.stderr;
  }

  /** The command's result: `doc` in JSON mode, `lines` otherwise. */
  result(doc: unknown, lines: readonly string[] | (() => readonly string[])): void {
    if (this.json) {
      this.#document(doc);
      return;
    }
    for (const l of typeof lines === 'function' ? lines() : lines) this.#io.stdout.write(`${l}\n`);
  }

  /** A confirmation of a change (`erased acme ...`): printed unless --quiet; JSON mode prints `doc`. */
  done(doc: unknown, lines: readonly string[]): void {
    if (this.json) this.#document(doc);
    else if (!this.quiet) for (const l of lines) this.#io.stdout.write(`${l}\n`);
  }

  /** A side remark on stderr (which token file was used, ...); silenced by --quiet. */
  note(line: string): void {
    if (!this.quiet) this.#io.stderr.write(`${line}\n`);
  }

  /** A problem line on stderr that --quiet does not silence. */
  problem(line: string): void {
    this.#io.stderr.write(`${line}\n`);
  }

  /** Report a failure: `error CODE: message` and its details on stderr; in JSON mode also the error document on stdout. */
  error(err: unknown): void {
    for (const l of errorLines(err)) this.#io.stderr.write(`${l}\n`);
    if (this.json && !this.#printedDocument) this.#document({ error: errorDocument(err) });
  }

  #document(doc: unknown): void {
    this.#printedDocument = true;
    this.#io.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  }
}

/** The body of `{"error": ...}` for any error. */
export function errorDocument(err: unknown): Record<string, unknown> {
  if (isDomicileError(err)) {
    const status = (err as { status?: unknown }).status;
    return { code: err.code, message: err.message, ...err.details, ...(typeof status === 'number' ? { status } : {}) };
  }
  if (isUsageError(err)) return { code: 'USAGE', message: err.message };
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

// Details the user needs to act on, in this order; the rest follow.
const DETAIL_ORDER = ['statementIndex', 'sqliteCode', 'rule', 'url', 'retryAfter'];

/** Human lines of an error: `error CODE: message`, then `  key: value` per detail. Never a stack. */
export function errorLines(err: unknown): string[] {
  if (isUsageError(err)) return [`error: ${err.message}`];
  if (!isDomicileError(err)) return [`error INTERNAL: ${err instanceof Error ? err.message : String(err)}`];
  const lines = [`error ${err.code}: ${err.message}`];
  const keys = Object.keys(err.details).sort((a, b) => rank(a) - rank(b));
  for (const k of keys) {
    const v = err.details[k];
    if (v === undefined || k === 'move' || k === 'errors') continue;
    lines.push(`  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
  return lines;
}

function rank(k: string): number {
  const i = DETAIL_ORDER.indexOf(k);
  return i === -1 ? DETAIL_ORDER.length : i;
}
