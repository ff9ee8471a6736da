/**
 * Has a tenant's `-wal` changed since the replicator's shipper last read it?
 * The check a checkpoint job runs in the worker right before it checkpoints
 * (docs/replication.md, "Checkpoints"): a commit the shipper has not shipped
 * must never be folded into the database file, where it could not be shipped.
 *
 * A file size cannot tell, once a checkpoint has restarted the log without
 * truncating it (`wal_checkpoint(RESTART)`): new frames then overwrite old
 * ones at the start of a file that stays as large as it was. The log itself
 * can. SQLite gives each log a pair of salts, in its header and in every
 * frame, and changes them whenever it restarts the log, which only a write
 * does. So the log holds nothing the shipper has not read when
 * - its header still carries the salts of the mark (no write restarted it), and
 * - no frame with those salts starts at the mark's offset (nothing was appended).
 * A leftover frame of a rolled-back transaction at that offset also counts as
 * a change: the check may skip a safe checkpoint, never allow an unsafe one.
 */
import { closeSync, openSync, readSync } from 'node:fs';

/** Where a shipper stopped reading a `-wal`: the log's salts and the offset after the last frame it read. */
export interface WalMark {
  salt1: number;
  salt2: number;
  offset: number;
}

const WAL_HEADER_SIZE = 32;
const FRAME_HEADER_SIZE = 24;

/** True when `walPath` may hold frames past `mark` (or cannot be read): checkpointing could fold unshipped commits. */
export function walChangedSince(walPath: string, mark: WalMark): boolean {
  let fd: number;
  try {
    fd = openSync(walPath, 'r');
  } catch {
    return true;
  }
  try {
    const header = Buffer.alloc(WAL_HEADER_SIZE);
    if (readSync(fd, header, 0, WAL_HEADER_SIZE, 0) !== WAL_HEADER_SIZE) return true;
    const salt1 = header.readUInt32BE(16);
    const salt2 = header.readUInt32BE(20);
    if (salt1 !== mark.salt1 || salt2 !== mark.salt2 || mark.offset < WAL_HEADER_SIZE) return true;
    const frame = Buffer.alloc(FRAME_HEADER_SIZE);
    if (readSync(fd, frame, 0, FRAME_HEADER_SIZE, mark.offset) !== FRAME_HEADER_SIZE) return false;
    return frame.readUInt32BE(8) === salt1 && frame.readUInt32BE(12) === salt2;
  } finally {
    closeSync(fd);
  }
}
