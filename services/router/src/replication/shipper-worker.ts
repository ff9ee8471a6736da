/**
 * Entry of the shipper thread (shipper-thread.ts starts it): holds the node's
 * `WalShipper`s by id and runs what the main thread asks, in message order. A
 * pass (`SegmentPasses`) captures and uploads here too, into the bucket the
 * message names by URL (opened once per URL on this thread), so the event
 * loop neither encodes nor uploads segments: it receives the counts.
 * Segments of up to `SEGMENT_IN_PLACE_BYTES` (8 MiB) of page data are
 * compressed in place on this thread (a few milliseconds for a busy tenant's
 * 500 ms of writes, and less CPU than on the libuv pool: see
 * `compressInlineBelow`); larger ones, and snapshot slices, on the pool, so
 * one tenant's big capture does not hold up another's message for long
 * (brotli at quality 1 takes 20–70 ms here for 8 MiB of random bytes).
 */
import { parentPort } from 'node:worker_threads';
import { openObjectStore, S3ObjectStore, type ObjectStore } from '@domicile/object-store';
import { SEGMENT_IN_PLACE_BYTES, SegmentPasses, WalShipper, compressInlineBelow } from '@domicile/replication';
import { osThreadId } from '@domicile/shard';
import { toWire, type BucketPuts, type FromShipperWorker, type ShipperState, type ToShipperWorker } from './shipper-protocol.ts';

const port = parentPort!;
port.postMessage({ tid: osThreadId() } satisfies FromShipperWorker);
compressInlineBelow(SEGMENT_IN_PLACE_BYTES + 1);
const shippers = new Map<number, SegmentPasses>();
const buckets = new Map<string, ObjectStore>();

const stateOf = ({ shipper: s }: SegmentPasses): ShipperState => ({ txid: s.txid, shippedTxid: s.shippedTxid, checksum: s.checksum, pageHash: s.pageHash });

function shipper(sid: number): SegmentPasses {
  const s = shippers.get(sid);
  if (!s) throw Object.assign(new Error(`shipper ${sid} is closed`), { code: 'SHIPPER_LOST' });
  return s;
}

function bucket(url: string): ObjectStore {
  let store = buckets.get(url);
  if (!store) buckets.set(url, (store = openObjectStore(url)));
  return store;
}

/** The put counters of an S3 bucket's store, for the main thread's metrics (none for other stores). */
function putsOf(url: string): { puts?: BucketPuts } {
  const store = buckets.get(url);
  if (!(store instanceof S3ObjectStore)) return {};
  const { lean, sdk, leanOff } = store.putStats;
  return { puts: { bucket: url, lean, sdk, leanOff: leanOff !== undefined } };
}

async function answer(m: Extract<ToShipperWorker, { id: number }>): Promise<FromShipperWorker> {
  switch (m.op) {
    case 'resume': {
      const s = WalShipper.resume(m.opts, m.tip);
      if (!s) return { id: m.id, ok: true, value: false };
      const p = new SegmentPasses(s);
      shippers.set(m.sid, p);
      return { id: m.id, ok: true, value: true, state: stateOf(p) };
    }
    case 'begin': {
      const p = new SegmentPasses(await WalShipper.beginGenerationFromCopyAsync(m.opts, m.copyPath));
      shippers.set(m.sid, p);
      return { id: m.id, ok: true, value: true, state: stateOf(p) };
    }
    case 'pass': {
      const p = shipper(m.sid);
      try {
        // The counters go out as soon as the segment is captured: an upload may take long (a bucket down).
        const captured = () => port.postMessage({ sid: m.sid, state: stateOf(p) } satisfies FromShipperWorker);
        p.shipper.lendLiveFile(m.liveFd);
        return { id: m.id, ok: true, value: await p.pass(bucket(m.bucket), captured), state: stateOf(p), ...putsOf(m.bucket) };
      } catch (err) {
        return { id: m.id, ok: false, error: toWire(err), state: stateOf(p), ...putsOf(m.bucket) };
      } finally {
        p.shipper.lendLiveFile(undefined); // the main thread takes it back when this answer arrives
      }
    }
    case 'checkpointAllowed':
      return { id: m.id, ok: true, value: shippers.get(m.sid)?.shipper.checkpointAllowed() ?? false };
    case 'checkpointMark':
      return { id: m.id, ok: true, value: shippers.get(m.sid)?.shipper.checkpointMark() ?? null };
  }
}

port.on('message', (m: ToShipperWorker) => {
  if ('id' in m) {
    answer(m).then(
      (reply) => port.postMessage(reply),
      (err: unknown) => port.postMessage({ id: m.id, ok: false, error: toWire(err) } satisfies FromShipperWorker),
    );
    return;
  }
  const s = shippers.get(m.sid);
  if (!s) return;
  switch (m.op) {
    case 'noteCheckpoint': s.shipper.noteCheckpoint(m.result); break;
    case 'close': s.shipper.close(); shippers.delete(m.sid); break;
  }
});
