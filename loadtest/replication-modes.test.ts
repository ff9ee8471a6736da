import { describe, expect, it } from 'vitest';
import { DEFAULT_MODES, selectModes } from './bench/replication-modes.ts';

describe('pnpm bench:replication --modes', () => {
  it('runs every mode but async-b by default', () => {
    expect([...selectModes(undefined, false)]).toEqual(['off', 'async', 'async-fs', 'sync', 'off-again']);
    expect(DEFAULT_MODES).not.toContain('async-b');
  });

  it('runs the modes named, with off always', () => {
    expect([...selectModes('async,off-again', false)]).toEqual(['off', 'async', 'off-again']);
    expect([...selectModes('async,async-b,off-again', true)]).toEqual(['off', 'async', 'async-b', 'off-again']);
  });

  it('refuses an unknown mode, and async-b without its settings or the settings without it', () => {
    expect(() => selectModes('async,fast', false)).toThrow('unknown mode "fast" in --modes (known: off, async, async-fs, async-b, sync, off-again)');
    expect(() => selectModes('async,async-b', false)).toThrow('async-b (in --modes) and --node-env-b or --bucket-params-b go together');
    expect(() => selectModes('async', true)).toThrow('async-b (in --modes) and --node-env-b or --bucket-params-b go together');
    expect(() => selectModes(undefined, true)).toThrow('async-b (in --modes) and --node-env-b or --bucket-params-b go together');
  });
});
