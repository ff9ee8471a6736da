import { describe, expect, it } from 'vitest';
import { describeNodeEnv, parseNodeEnv } from './bench/node-env.ts';

describe('--node-env', () => {
  it('turns KEY=VALUE pairs into an environment (the value may hold "=")', () => {
    expect(parseNodeEnv(['DOMICILE_SHIP_INTERVAL=400ms', 'X_Y=a=b', 'EMPTY='])).toEqual({ DOMICILE_SHIP_INTERVAL: '400ms', X_Y: 'a=b', EMPTY: '' });
    expect(parseNodeEnv([])).toEqual({});
  });

  it('refuses a pair without a key or with a key no shell would set, naming it', () => {
    for (const bad of ['NOVALUE', '=x', 'A B=1', '1A=2']) expect(() => parseNodeEnv([bad]), bad).toThrow(`--node-env must be KEY=VALUE, got ${JSON.stringify(bad)}`);
    expect(() => parseNodeEnv(['A=1', 'B'], '--node-env-b')).toThrow('--node-env-b must be KEY=VALUE, got "B"');
  });

  it('names the settings for a report', () => {
    expect(describeNodeEnv({ A: '1', B: 'x' })).toBe('`A=1`, `B=x`');
    expect(describeNodeEnv({})).toBe('');
  });
});
