import { isUnreachable } from '@domicile/client';

/** Exit codes of `domicile` (docs/cli.md). */
export const ExitCode = Object.freeze({
  /** The command did what it was asked. */
  OK: 0,
  /** The server answered with an error, or a check found problems (invalid policy, residency violation, refused dry run). */
  FAILED: 1,
  /** The command line is wrong: unknown command or option, missing argument, a refused unconfirmed erase. */
  USAGE: 2,
  /** No answer from the server: connection refused, DNS failure, timeout. */
  UNREACHABLE: 3,
});

/** A wrong command line found by our own checks (commander finds the rest); exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** True for a UsageError (by name: classify without instanceof across copies). */
export function isUsageError(err: unknown): err is UsageError {
  return err instanceof Error && err.name === 'UsageError';
}

/** The exit code an error ends the process with. */
export function exitCodeOf(err: unknown): number {
  if (isUsageError(err)) return ExitCode.USAGE;
  if (isUnreachable(err)) return ExitCode.UNREACHABLE;
  return ExitCode.FAILED;
}
