/**
 * What decides a message's owning worker (TCP in the master, UDP in the
 * worker that read the datagram): the Call-ID (long `Call-ID:` or
 * compact `i:`, any case, LWS before the colon) hashed with FNV-1a straight
 * from the bytes, trimmed, without a parse or a string; at most its first
 * CALLID_HASH_BYTES bytes, as the kernel's steering program can hash them
 * (callid-steer.ts). -1 when absent.
 */
import { STATELESS_BRANCH } from './build.js';

const LF = 10;
const CR = 13;
const SP = 32;
const HT = 9;
const COLON = 58;
/** how much of a Call-ID the hash reads: as much as the unrolled steering program can */
export const CALLID_HASH_BYTES = 32;
const CALLID = [99, 97, 108, 108, 45, 105, 100]; // "call-id"

function isWs(c: number | undefined): boolean {
  return c === SP || c === HT;
}

/** position of the value after `name` + LWS + ':' at line start `i`, or -1 */
function valueStart(buf: Uint8Array, i: number, end: number): number {
  let j = i;
  const c0 = buf[j]! | 0x20;
  if (c0 === 105 /* i */) {
    j++;
    if (buf[j] !== COLON && !isWs(buf[j])) {
      // maybe the long form
      j = i;
      for (let k = 0; k < CALLID.length; k++, j++) {
        if (j >= end || (buf[j]! | 0x20) !== CALLID[k]) return -1;
      }
    }
  } else if (c0 === 99 /* c */) {
    for (let k = 0; k < CALLID.length; k++, j++) {
      if (j >= end || (buf[j]! | 0x20) !== CALLID[k]) return -1;
    }
  } else return -1;
  while (j < end && isWs(buf[j])) j++;
  if (buf[j] !== COLON) return -1;
  return j + 1;
}

/** the SIP worker that owns the call of `msg`: Call-ID hash mod `workers`; -1 without a Call-ID */
export function ownerOf(msg: Uint8Array, workers: number): number {
  const h = scanCallId(msg, 0, msg.length);
  return h < 0 ? -1 : h % workers;
}

export function scanCallId(buf: Uint8Array, start: number, end: number): number {
  let i = start;
  // skip the first line
  while (i < end && buf[i] !== LF) i++;
  i++;
  while (i < end) {
    // end of headers
    if (buf[i] === CR || buf[i] === LF) return -1;
    const v = valueStart(buf, i, end);
    if (v >= 0) {
      let s = v;
      while (s < end && isWs(buf[s])) s++;
      let e = s;
      while (e < end && buf[e] !== CR && buf[e] !== LF) e++;
      while (e > s && isWs(buf[e - 1])) e--;
      if (e === s) return -1;
      if (e - s > CALLID_HASH_BYTES) e = s + CALLID_HASH_BYTES;
      let h = 0x811c9dc5;
      for (let k = s; k < e; k++) {
        h ^= buf[k]!;
        h = Math.imul(h, 0x01000193);
      }
      return h >>> 1; // non-negative
    }
    while (i < end && buf[i] !== LF) i++;
    i++;
  }
  return -1;
}

const COMMA = 44;
const SEMI = 59;
const VIA = [118, 105, 97]; // "via"
/** what our Via of a stateless forward carries, as forwardRequestEdits writes it */
const SL_BRANCH = [...`;branch=${STATELESS_BRANCH}`].map((c) => c.charCodeAt(0));

/** position of the value after `Via`/`v` + LWS + ':' at line start `i`, or -1 */
function viaValueStart(buf: Uint8Array, i: number, end: number): number {
  let j = i;
  if ((buf[j]! | 0x20) !== VIA[0]) return -1;
  j++;
  if (buf[j] !== COLON && !isWs(buf[j])) {
    for (let k = 1; k < VIA.length; k++, j++) {
      if (j >= end || (buf[j]! | 0x20) !== VIA[k]) return -1;
    }
  }
  while (j < end && isWs(buf[j])) j++;
  if (buf[j] !== COLON) return -1;
  return j + 1;
}

/**
 * A reply whose top Via is one we wrote for a stateless forward
 * (`;branch=z9hG4bKsl…`): no transaction waits for it anywhere, so the
 * worker that read it relays it rather than handing it to the call's owner.
 * Read straight from the bytes, as the Call-ID hash; false when unsure
 * (the owner then handles it, as any other message).
 */
export function statelessReply(buf: Uint8Array): boolean {
  const end = buf.length;
  // "SIP/": a reply
  if (end < 16 || buf[0] !== 83 || buf[1] !== 73 || buf[2] !== 80 || buf[3] !== 47) return false;
  let i = 0;
  while (i < end && buf[i] !== LF) i++;
  i++;
  while (i < end) {
    if (buf[i] === CR || buf[i] === LF) return false;
    const v = viaValueStart(buf, i, end);
    if (v >= 0) {
      // the top Via: up to the first comma or the end of its line
      for (let j = v; j < end && buf[j] !== CR && buf[j] !== LF && buf[j] !== COMMA; j++) {
        if (buf[j] !== SEMI) continue;
        let k = 0;
        while (k < SL_BRANCH.length && j + k < end && buf[j + k] === SL_BRANCH[k]) k++;
        if (k === SL_BRANCH.length) return true;
      }
      return false;
    }
    while (i < end && buf[i] !== LF) i++;
    i++;
  }
  return false;
}

/** ";tag=", compared with 0x20 set (";" and "=" have it already) */
const TO_TAG = [59, 116, 97, 103, 61];

/** position of the value after `To`/`t` + LWS + ':' at line start `i`, or -1 */
function toValueStart(buf: Uint8Array, i: number, end: number): number {
  let j = i;
  if ((buf[j]! | 0x20) !== 116 /* t */) return -1;
  j++;
  if ((buf[j]! | 0x20) === 111 /* o */) j++;
  while (j < end && isWs(buf[j])) j++;
  if (buf[j] !== COLON) return -1;
  return j + 1;
}

/**
 * A request that may start a call: not a reply, not ACK or CANCEL, and no
 * To tag (a folded To header read on). Read from the bytes like the Call-ID
 * hash; false when unsure (the message then goes where its Call-ID says).
 */
export function startsCall(buf: Uint8Array): boolean {
  const end = buf.length;
  if (end < 16 || (buf[0] === 83 && buf[1] === 73 && buf[2] === 80 && buf[3] === 47)) return false;
  // "ACK " and "CANCEL ": they belong to a transaction that exists, or to none
  if (buf[0] === 65 && buf[1] === 67 && buf[2] === 75 && buf[3] === SP) return false;
  if (buf[0] === 67 && buf[1] === 65 && buf[2] === 78 && buf[3] === 67 && buf[4] === 69 && buf[5] === 76) return false;
  let i = 0;
  while (i < end && buf[i] !== LF) i++;
  i++;
  while (i < end) {
    if (buf[i] === CR || buf[i] === LF) return false;
    const v = toValueStart(buf, i, end);
    if (v >= 0) {
      let j = v;
      for (;;) {
        while (j < end && buf[j] !== LF) {
          let k = 0;
          while (k < TO_TAG.length && j + k < end && (buf[j + k]! | 0x20) === TO_TAG[k]) k++;
          if (k === TO_TAG.length) return false;
          j++;
        }
        j++;
        // a folded header goes on in a line that starts with white space
        if (j >= end || !isWs(buf[j])) return true;
      }
    }
    while (i < end && buf[i] !== LF) i++;
    i++;
  }
  return false;
}
