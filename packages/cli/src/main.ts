// Entry of bin/domicile.js: run the CLI on this process's arguments and set its exit code.
import { processIo } from './io.ts';
import { run } from './run.ts';

process.exitCode = await run(process.argv.slice(2), processIo());
