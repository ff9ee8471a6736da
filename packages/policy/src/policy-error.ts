import { DomicileError, isDomicileError } from '@domicile/errors';
import type { PolicyProblem } from './types.ts';

/** One line for one problem: `file:line:column: path: message` (line 0: `file: message`). */
export function formatProblem(file: string, p: PolicyProblem): string {
  const where = p.line > 0 ? `${file}:${p.line}:${p.column}` : file;
  return p.path === '' ? `${where}: ${p.message}` : `${where}: ${p.path}: ${p.message}`;
}

/**
 * An invalid policy file: code BAD_REQUEST with `details.policyFile` and
 * `details.errors` (every problem found, sorted by position). Classify with
 * `isPolicyError`, not `instanceof`.
 */
export class PolicyError extends DomicileError {
  /** File the problems were found in. */
  readonly file: string;
  /** Every problem, in file order. */
  readonly errors: readonly PolicyProblem[];

  constructor(file: string, errors: readonly PolicyProblem[], options?: { cause?: unknown }) {
    const n = errors.length;
    const lines = errors.map((p) => formatProblem(file, p));
    super('BAD_REQUEST', `invalid policy ${file} (${n} error${n === 1 ? '' : 's'}):\n${lines.join('\n')}`,
      { policyFile: file, errors }, options);
    this.name = 'PolicyError';
    this.file = file;
    this.errors = errors;
  }
}

/** True for a policy-file error (by code and details, so it works across package copies and threads). */
export function isPolicyError(err: unknown): err is PolicyError {
  return isDomicileError(err) && err.code === 'BAD_REQUEST'
    && typeof err.details.policyFile === 'string' && Array.isArray(err.details.errors);
}

/** For the CLI: one line per problem of a policy error; any other error gives its message. */
export function formatPolicyErrors(err: unknown): string {
  if (isPolicyError(err)) {
    const file = err.details.policyFile as string;
    return (err.details.errors as PolicyProblem[]).map((p) => formatProblem(file, p)).join('\n');
  }
  return err instanceof Error ? err.message : String(err);
}
