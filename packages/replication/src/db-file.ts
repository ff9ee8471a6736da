/**
 * Reading a plain SQLite database file page by page (no SQLite): its page
 * size from the header, and page images by number.
 */
import { fstatSync, readSync } from 'node:fs';
import { DomicileError } from '@domicile/errors';

/** Page size from a database header (bytes 16–17; 1 means 65536), or 0 when `hdr` is not a SQLite header. */
export function headerPageSize(hdr: Uint8Array): number {
  if (hdr.byteLength < 100 || Buffer.from(hdr.subarray(0, 16)).toString('latin1') !== 'SQLite format 3\0') return 0;
  const raw = (hdr[16]! << 8) | hdr[17]!;
  const ps = raw === 1 ? 65536 : raw;
  return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) === 0 ? ps : 0;
}

/** Synchronous page access to an open database file. */
export class DbFile {
  readonly fd: number;
  readonly pageSize: number;

  constructor(fd: number, pageSize?: number) {
    this.fd = fd;
    if (pageSize !== undefined) {
      this.pageSize = pageSize;
      return;
    }
    const hdr = new Uint8Array(100);
    const n = readSync(fd, hdr, 0, 100, 0);
    this.pageSize = n === 100 ? headerPageSize(hdr) : 0;
    if (this.pageSize === 0) throw new DomicileError('INTERNAL', 'not a SQLite database file (bad header)');
  }

  /** Whole pages in the file. */
  pageCount(): number {
    return Math.floor(fstatSync(this.fd).size / this.pageSize);
  }

  /** Page `pgno` (1-based), or undefined past the end of the file. */
  page(pgno: number): Uint8Array | undefined {
    const out = new Uint8Array(this.pageSize);
    const n = readSync(this.fd, out, 0, this.pageSize, (pgno - 1) * this.pageSize);
    return n === this.pageSize ? out : undefined;
  }
}
