import { existsSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServer } from './redis-server.ts';

/** Sends inline commands on one connection and resolves with the raw reply, or 'timeout' / 'refused'. */
async function send(port: number, commands: string[], timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let data = '';
    const done = (v: string): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(data === '' ? 'timeout' : data), timeoutMs);
    sock.on('connect', () => sock.write(commands.map((c) => `${c}\r\n`).join('')));
    sock.on('data', (d) => {
      data += d.toString('utf8');
      if (data.split('\r\n').length - 1 >= commands.length) done(data);
    });
    sock.on('error', () => done('refused'));
  });
}

describe('startRedisServer', () => {
  const servers: RedisServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it('serves on a free loopback port, requires its password, and stop() removes its directory', async () => {
    const s = await startRedisServer({ password: 'p@ss word' });
    servers.push(s);
    expect(s.url).toBe(`redis://:${encodeURIComponent('p@ss word')}@127.0.0.1:${s.port}`);
    expect(await send(s.port, ['PING'])).toMatch(/^-NOAUTH/);
    expect(await send(s.port, ['AUTH "p@ss word"', 'SET k v', 'GET k'])).toBe('+OK\r\n+OK\r\n$1\r\nv\r\n');
    const dir = s.dir;
    await s.stop();
    expect(existsSync(dir)).toBe(false);
    expect(await send(s.port, ['PING'])).toBe('refused');
  });

  it('serves TLS only with tls, on a certificate that verifies as 127.0.0.1', async () => {
    const s = await startRedisServer({ tls: true });
    servers.push(s);
    expect(s.url).toBe(`rediss://127.0.0.1:${s.port}`);
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = tls.connect({ host: '127.0.0.1', port: s.port, ca: s.ca! }, () => sock.write('PING\r\n'));
      sock.on('data', (d) => {
        sock.destroy();
        resolve(d.toString('utf8'));
      });
      sock.on('error', reject);
    });
    expect(reply).toBe('+PONG\r\n');
    // Plain text on the TLS port gets no Redis answer.
    expect(await send(s.port, ['PING'], 500)).not.toBe('+PONG\r\n');
  });

  it('pause() leaves connections unanswered until resume()', async () => {
    const s = await startRedisServer();
    servers.push(s);
    s.pause();
    expect(await send(s.port, ['PING'], 300)).toBe('timeout');
    s.resume();
    expect(await send(s.port, ['PING'])).toBe('+PONG\r\n');
  });

  it('kill() then restart() on the same port keeps the data only with persistence', async () => {
    const durable = await startRedisServer({ persistence: true });
    const volatile = await startRedisServer();
    servers.push(durable, volatile);
    for (const s of [durable, volatile]) expect(await send(s.port, ['SET k v'])).toBe('+OK\r\n');
    for (const s of [durable, volatile]) {
      await s.kill();
      expect(s.pid).toBeUndefined();
      expect(await send(s.port, ['PING'])).toBe('refused');
      await s.restart();
      expect(s.pid).toBeGreaterThan(0);
    }
    expect(await send(durable.port, ['GET k'])).toBe('$1\r\nv\r\n');
    expect(await send(volatile.port, ['GET k'])).toBe('$-1\r\n');
  });
});
