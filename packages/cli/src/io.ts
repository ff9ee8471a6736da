import { createInterface } from 'node:readline/promises';

/** A stream the CLI writes to. */
export interface OutStream {
  write(chunk: string): unknown;
  /** True when a person is looking at it (progress bars, prompts). */
  readonly isTTY?: boolean;
}

/**
 * Everything the CLI touches outside itself, so `run()` can be driven in
 * process by tests exactly as the bin drives it with the real process.
 */
export interface CliIo {
  readonly stdout: OutStream;
  readonly stderr: OutStream;
  /** True when stdin is a terminal (confirmation prompts are allowed). */
  readonly stdinIsTTY: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths (the data dir) resolve against. */
  readonly cwd: string;
  /** Ask a question on the terminal and resolve with the answer line. */
  prompt(question: string): Promise<string>;
}

/** The real process's streams and environment. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdinIsTTY: process.stdin.isTTY === true,
    env: process.env,
    cwd: process.cwd(),
    async prompt(question) {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}
