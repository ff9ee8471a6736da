/**
 * Entry of the shipper thread (shipper-thread.ts starts it): holds the node's
 * `WalShipper`s by id and runs what the main thread asks, in message order.
 * Segments under 1 MiB of page data are compressed in place on this thread
 * (a millisecond or so, about half the CPU of the libuv pool's: see
 * `compressInlineBelow`); larger ones, and snapshot slices, on the pool, so
 * one tenant's big capture does not hold up another's message for long.
 */
import { parentPort } from 'node:worker_threads';
import { WalShipper, compressInlineBelow, type CaptureResult } from '@domicile/replication';
import { toWire, type FromShipperWorker, type ShipperState, type ToShipperWorker } from './shipper-protocol.ts';

const port = parentPort!;
compressInlineBelow(1 << 20);
const shippers = new Map<number, WalShipper>();

const stateOf = (s: WalShipper): ShipperState => ({ txid: s.txid, shippedTxid: s.shippedTxid, checksum: s.checksum });

function shipper(sid: number): WalShipper {
  const s = shippers.get(sid);
  if (!s) throw Object.assign(new Error(`shipper ${sid} is closed`), { code: 'SHIPPER_LOST' });
  return s;
}

async function answer(m: Extract<ToShipperWorker, { id: number }>): Promise<FromShipperWorker> {
  switch (m.op) {
    case 'resume': {
      const s = WalShipper.resume(m.opts, m.tip);
      if (!s) return { id: m.id, ok: true, value: false };
      shippers.set(m.sid, s);
      return { id: m.id, ok: true, value: true, state: stateOf(s) };
    }
    case 'begin': {
      const s = await WalShipper.beginGenerationFromCopyAsync(m.opts, m.copyPath);
      shippers.set(m.sid, s);
      return { id: m.id, ok: true, value: true, state: stateOf(s) };
    }
    case 'capture': {
      const s = shipper(m.sid);
      const c: CaptureResult = await s.captureAsync();
      return { id: m.id, ok: true, value: c, state: stateOf(s) };
    }
    case 'checkpointAllowed':
      return { id: m.id, ok: true, value: shippers.get(m.sid)?.checkpointAllowed() ?? false };
  }
}

/** A standalone buffer for the transfer list: segment bytes may be a view of a larger (or pooled) one. */
function transferable(m: FromShipperWorker): ArrayBuffer[] {
  if (!m.ok || m.value === null || typeof m.value !== 'object' || !('bytes' in m.value)) return [];
  const c = m.value as { bytes: Uint8Array };
  if (!(c.bytes instanceof Uint8Array) || !(c.bytes.buffer instanceof ArrayBuffer)) return [];
  if (c.bytes.byteOffset !== 0 || c.bytes.byteLength !== c.bytes.buffer.byteLength) c.bytes = new Uint8Array(c.bytes);
  return [c.bytes.buffer as ArrayBuffer];
}

port.on('message', (m: ToShipperWorker) => {
  if ('id' in m) {
    answer(m).then(
      (reply) => port.postMessage(reply, transferable(reply)),
      (err: unknown) => port.postMessage({ id: m.id, ok: false, error: toWire(err) } satisfies FromShipperWorker),
    );
    return;
  }
  const s = shippers.get(m.sid);
  if (!s) return;
  switch (m.op) {
    case 'acknowledge': s.acknowledge(m.maxTxid); break;
    case 'noteCheckpoint': s.noteCheckpoint(m.result); break;
    case 'close': s.close(); shippers.delete(m.sid); break;
  }
});
