import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { EmbeddedDirectory, MemoryLeaseStore, MemoryMembership, type Membership } from '@domicile/directory';
import { ClusterNode, MISS_RELIST_MS } from './cluster-node.ts';

let dir: string;
let directory: EmbeddedDirectory;
let store: MemoryLeaseStore;
const nodes: ClusterNode[] = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'domicile-cluster-node-'));
  directory = new EmbeddedDirectory(path.join(dir, 'directory.db'));
  store = new MemoryLeaseStore();
});

afterEach(async () => {
  for (const n of nodes.splice(0)) await n.leave().catch(() => undefined);
  await directory.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A node on the shared lease store whose listing cache runs on `clock.now`; counts the listings it makes. */
function makeNode(id: string, region: string, clock: { now: number }): { node: ClusterNode; listings: () => number } {
  const membership: Membership = new MemoryMembership({ store, directory, ttlMs: 3000 });
  let listings = 0;
  const list = membership.liveNodes.bind(membership);
  membership.liveNodes = (r?: string) => { listings++; return list(r); };
  const node = new ClusterNode({ membership, id, region, cacheMs: 500, now: () => clock.now });
  nodes.push(node);
  return { node, listings: () => listings };
}

it('a node that rejoined after the listing was cached is found at once, and hits keep using the cache', async () => {
  const clock = { now: 0 };
  const { node: a, listings } = makeNode('a', 'eu-west', clock);
  const { node: b } = makeNode('b', 'us-east', clock);
  await a.join('http://a', 'h');
  await b.join('http://b', 'h');
  expect((await a.liveNode('b'))?.url).toBe('http://b');
  expect(listings()).toBe(1);

  // b's lease goes (as after a Redis pause) and a caches a listing without it.
  await b.leave();
  clock.now += 501;
  expect(await a.liveNode('b')).toBeUndefined();
  expect(await a.liveNodes('us-east')).toEqual([]);
  const afterMiss = listings();

  // b is back within the cache's age: a miss on a listing older than MISS_RELIST_MS lists again.
  const { node: b2 } = makeNode('b', 'us-east', clock);
  await b2.join('http://b', 'h');
  clock.now += MISS_RELIST_MS + 1;
  expect((await a.liveNode('b'))?.id).toBe('b');
  expect(listings()).toBe(afterMiss + 1);
  // Hits (and a's own region) are answered from that listing, no call.
  expect((await a.liveNodes('us-east')).map((n) => n.id)).toEqual(['b']);
  expect((await a.liveNode('a'))?.id).toBe('a');
  expect(listings()).toBe(afterMiss + 1);
});

it('misses for a node that stays dead list again at most once per MISS_RELIST_MS', async () => {
  const clock = { now: 0 };
  const { node: a, listings } = makeNode('a', 'eu-west', clock);
  await a.join('http://a', 'h');
  expect(await a.liveNode('gone')).toBeUndefined();
  const first = listings();
  for (let i = 0; i < 20; i++) {
    expect(await a.liveNode('gone')).toBeUndefined();
    expect(await a.liveNodes('ap-south')).toEqual([]);
  }
  expect(listings()).toBe(first);
  clock.now += MISS_RELIST_MS + 1;
  expect(await a.liveNode('gone')).toBeUndefined();
  expect(listings()).toBe(first + 1);
});
