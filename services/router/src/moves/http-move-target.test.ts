import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { DEFAULT_PAGE_HASH, PageHash } from '@domicile/replication';
import { HttpMoveTarget } from './http-move-target.ts';
import { MOVE_PROTOCOL_VERSION } from './protocol.ts';
import type { SnapshotInfo } from './wal-follower.ts';

/** A peer on loopback that answers the target's `begin` with `answer` and records the paths asked. */
let server: Server;
let answer: Record<string, unknown>;
const asked: string[] = [];

beforeEach(async () => {
  asked.length = 0;
  server = createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url!.endsWith('/target') ? answer : { ok: true }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});

afterEach(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

const target = () => new HttpMoveTarget({
  url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, nodeId: 'eu-2', moveId: 'm1', clusterSecret: 's', tenant: 'acme', incarnation: 'i', epoch: 2,
});
const info: SnapshotInfo = { pageSize: 4096, pageCount: 1, bytes: 4096 };

it('begins with a target of the same protocol and page hash', async () => {
  answer = { version: MOVE_PROTOCOL_VERSION, node: 'eu-2', pageHash: DEFAULT_PAGE_HASH };
  await target().begin(info);
  expect(asked).toEqual(['POST /internal/v1/moves/m1/target']);
});

it('refuses a target of another page hash before copying anything (503 NODE_UNAVAILABLE), and discards its side', async () => {
  answer = { version: MOVE_PROTOCOL_VERSION, node: 'eu-2', pageHash: PageHash.sha256 };
  await expect(target().begin(info)).rejects.toMatchObject({
    code: 'NODE_UNAVAILABLE', message: 'target node eu-2 sums sha256 page hashes, this node xxh64: move between nodes of the same build',
  });
  expect(asked).toEqual(['POST /internal/v1/moves/m1/target', 'POST /internal/v1/moves/m1/target/discard']);
});

it('takes a target that names no page hash for a build before XXH64 (SHA-256), and refuses it', async () => {
  answer = { version: MOVE_PROTOCOL_VERSION, node: 'eu-2' };
  await expect(target().begin(info)).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE', message: expect.stringContaining('sums sha256 page hashes') });
});

it('refuses a target of another protocol major, naming both', async () => {
  answer = { version: '2', node: 'eu-2', pageHash: DEFAULT_PAGE_HASH };
  await expect(target().begin(info)).rejects.toMatchObject({
    code: 'NODE_UNAVAILABLE', message: `target node eu-2 speaks move protocol 2; this node speaks ${MOVE_PROTOCOL_VERSION}`,
  });
  expect(asked.at(-1)).toBe('POST /internal/v1/moves/m1/target/discard');
});
