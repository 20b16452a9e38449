/**
 * The tables as the last reload read them, in memory every thread shares:
 * the master writes them (permissions.addressReload, …) and each SIP worker
 * picks them up on its next check, without a message. A sequence number
 * guards the copy (odd while the master writes, as a seqlock).
 */
import type { AddressRow } from './address.js';
import type { TrustedRow } from './trusted.js';

export interface Tables {
  address: AddressRow[];
  trusted: TrustedRow[];
}

const HEADER = 8; // Int32 sequence, Int32 byte length
const INITIAL = 64 * 1024;
/** a reservation, not an allocation: the buffer grows to what a reload needs */
const MAX = 256 * 1024 * 1024;

export function allocTables(): SharedArrayBuffer {
  return new SharedArrayBuffer(INITIAL, { maxByteLength: MAX });
}

/** the master: publish `t`; false when it does not fit */
export function publish(sab: SharedArrayBuffer, t: Tables): boolean {
  const bytes = Buffer.from(JSON.stringify(t));
  if (HEADER + bytes.length > sab.maxByteLength) return false;
  if (HEADER + bytes.length > sab.byteLength) sab.grow(HEADER + bytes.length);
  const head = new Int32Array(sab, 0, 2);
  Atomics.add(head, 0, 1);
  new Uint8Array(sab, HEADER, bytes.length).set(bytes);
  Atomics.store(head, 1, bytes.length);
  Atomics.add(head, 0, 1);
  return true;
}

/** the sequence number of what is published (0: nothing yet) */
export function publishedSeq(sab: SharedArrayBuffer): number {
  return Atomics.load(new Int32Array(sab, 0, 2), 0);
}

/** the published tables when they are newer than `seq` and whole; null otherwise (try again on the next check) */
export function readPublished(sab: SharedArrayBuffer, seq: number): { seq: number; tables: Tables } | null {
  const head = new Int32Array(sab, 0, 2);
  const before = Atomics.load(head, 0);
  if (before === seq || before % 2 === 1) return null;
  const len = Atomics.load(head, 1);
  const text = Buffer.from(new Uint8Array(sab, HEADER, len)).toString();
  if (Atomics.load(head, 0) !== before) return null;
  return { seq: before, tables: JSON.parse(text) as Tables };
}
