/**
 * @domicile/cli — the `domicile` command (DESIGN §6). `run(argv, io)` drives
 * it in process with any io; bin/domicile.js drives it with the real process.
 */
export { run } from './run.ts';
export { ExitCode, UsageError } from './exit-codes.ts';
export { processIo, type CliIo, type OutStream } from './io.ts';
export { DEFAULT_URL } from './connection.ts';
