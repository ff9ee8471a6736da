/**
 * Change sets on the wire between nodes (DESIGN §9, docs/http-api.md): a
 * segment of the replication format (compression none, generation id all
 * zeros) with one transaction per WAL commit, numbered from 1, each carrying
 * the rolling checksum after it. The receiver learns the real txids from the
 * pages (shard-receiver.ts). The segment's own checks (trailer hash, ranges)
 * reject a damaged transfer as BACKUP_INVALID.
 */
import { Compression, decodeSegment, encodeSegment } from '@domicile/replication';
import type { ShardChanges } from './wal-follower.ts';

/** Who the change set belongs to (written into the segment header). */
export interface ChangeSetIdentity {
  tenant: string;
  incarnation: string;
  epoch: number;
}

/** Encodes a non-empty change set. */
export function encodeChanges(ch: ShardChanges, id: ChangeSetIdentity, pageSize: number): Uint8Array {
  const now = Date.now();
  const txs = ch.commits.map((c, i) => ({ txid: i + 1, time: now, truncateTo: c.commitSize, commitSize: c.commitSize, postChecksum: c.postChecksum, pages: c.pages }));
  return encodeSegment(
    { ...id, generation: '0'.repeat(20), pageSize, pageHash: ch.pageHash, preChecksum: ch.preChecksum, prePageCount: 0 },
    txs,
    { compression: Compression.none },
  );
}

/** Decodes what {@link encodeChanges} wrote (BACKUP_INVALID on damage). */
export function decodeChanges(bytes: Uint8Array): { changes: ShardChanges; pageSize: number; tenant: string } {
  const seg = decodeSegment(bytes, 'move change set');
  const distinct = new Set<number>();
  let pageImages = 0;
  const commits = seg.transactions.map((tx) => {
    const pages = tx.pages().map((p) => ({ pgno: p.pgno, data: Buffer.from(p.data) }));
    for (const p of pages) distinct.add(p.pgno);
    pageImages += pages.length;
    return { commitSize: tx.commitSize, pages, postChecksum: tx.postChecksum };
  });
  return {
    changes: { commits, preChecksum: seg.preChecksum, postChecksum: seg.postChecksum, pageHash: seg.pageHash, distinctPages: distinct.size, pageImages },
    pageSize: seg.pageSize,
    tenant: seg.tenant,
  };
}
