import { Writable } from 'node:stream';
import Fastify, { LogController } from 'fastify';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LazyChildLogger, lazyChildLoggerFactory } from '../src/lazy-logger.ts';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level }, stream);
  let children = 0;
  // Children inherit this property: count every child made anywhere below the root.
  const child = logger.child;
  logger.child = function (this: typeof logger, ...args: Parameters<typeof child>) {
    children++;
    return child.apply(this, args);
  } as typeof logger.child;
  return { logger, lines, children: () => children };
}

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

describe('LazyChildLogger', () => {
  it('carries no function per instance: the level methods are on the prototype (made once, not per request)', () => {
    const { logger } = capture('warn');
    const req = new LazyChildLogger(logger, { reqId: 'req-1' });
    expect(Object.keys(req)).toEqual([]);
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const) {
      expect(Object.hasOwn(req, level), level).toBe(false);
      expect(typeof req[level], level).toBe('function');
      expect(req[level].name, level).toBe(level);
    }
  });

  it('makes no child for lines below the level, and writes enabled lines with every binding, nested', () => {
    const { logger, lines, children } = capture('warn');
    const req = new LazyChildLogger(logger, { reqId: 'req-1' });
    const tenant = req.child({ tenant: 'acme' });
    tenant.info('not written');
    tenant.debug({ x: 1 }, 'not written');
    expect(children()).toBe(0);
    expect(lines).toEqual([]);
    tenant.warn({ code: 'X' }, 'written');
    tenant.error('again');
    expect(lines.map((l) => [l.reqId, l.tenant, l.code, l.msg, l.level])).toEqual([
      ['req-1', 'acme', 'X', 'written', 40],
      ['req-1', 'acme', undefined, 'again', 50],
    ]);
    expect(children()).toBe(2); // the two real children, each made once, on the first line
    expect(tenant.level).toBe('warn');
  });

  it('honours a level of its own (a route log level) and a level set later', () => {
    const { logger, lines } = capture('warn');
    const req = new LazyChildLogger(logger, { reqId: 'r' }, { level: 'debug' });
    req.debug('route level');
    expect(lines.map((l) => l.msg)).toEqual(['route level']);
    const other = new LazyChildLogger(logger, { reqId: 's' });
    other.level = 'info';
    other.info('after set');
    expect(lines.map((l) => l.msg)).toEqual(['route level', 'after set']);
  });

  it('is what fastify hands each request: lines carry the request id, quiet requests make no child', async () => {
    const { logger, lines, children } = capture('info');
    // As the router builds it (app.ts): access logs off, lazy request loggers.
    const app = Fastify({ loggerInstance: logger, childLoggerFactory: lazyChildLoggerFactory, logController: new LogController({ disableRequestLogging: true }) });
    closers.push(() => app.close());
    app.get('/quiet', async () => ({ ok: true }));
    app.get('/loud', async (request) => {
      request.log.info({ tenant: 't1' }, 'handled');
      return { ok: true };
    });
    const before = children();
    for (let i = 0; i < 5; i++) expect((await app.inject({ method: 'GET', url: '/quiet' })).statusCode).toBe(200);
    expect(children()).toBe(before);
    await app.inject({ method: 'GET', url: '/loud' });
    const handled = lines.filter((l) => l.msg === 'handled');
    expect(handled).toHaveLength(1);
    expect(handled[0]).toMatchObject({ tenant: 't1', reqId: expect.any(String) });
  });
});
