/**
 * The kernel's half of call affinity over UDP: a classic BPF program for a
 * listening address's SO_REUSEPORT group (SO_ATTACH_REUSEPORT_CBPF) that
 * picks, for each datagram, the socket of the worker that owns its call, by
 * the same Call-ID hash as ownerOf (callid-scan.ts). A datagram is then read
 * by its owner and handled there: no hop through a ring, no second thread
 * woken. Socket i of the group (the order they were bound) is worker i's.
 *
 * The program looks for a line starting with `Call-ID` (any case) within
 * the first STEER_SCAN_BYTES bytes, allows one SP/HT before the colon and up
 * to three after it, and hashes at most CALLID_HASH_BYTES bytes of the value
 * up to the line's end, FNV-1a as scanCallId does. Anything else (the
 * compact form `i:`, a Call-ID further in, a value with trailing blanks, a
 * keep-alive) returns an index past the group, which makes the kernel fall
 * back to its hash of the source address and port; the worker that reads
 * such a datagram hands it to the owner as before (core:udp_hops).
 */
import { CALLID_HASH_BYTES } from './callid-scan.js';

/** how far into a datagram the program looks for the Call-ID line */
export const STEER_SCAN_BYTES = 700;

// classic BPF opcodes (linux/filter.h)
const LD_W_ABS = 0x20;
const LD_LEN = 0x80;
const LD_IMM = 0x00;
const LD_MEM = 0x60;
const LD_W_IND = 0x40;
const LD_B_IND = 0x50;
const LDX_IMM = 0x01;
const LDX_MEM = 0x61;
const ST = 0x02;
const STX = 0x03;
const ALU_ADD_K = 0x04;
const ALU_OR_K = 0x44;
const ALU_MUL_K = 0x24;
const ALU_RSH_K = 0x74;
const ALU_MOD_K = 0x94;
const ALU_XOR_X = 0xac;
const JA = 0x05;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const RET_K = 0x06;
const RET_A = 0x16;
const TAX = 0x07;
const TXA = 0x87;

/** the kernel's limit (BPF_MAXINSNS) */
const MAX_INSNS = 4096;
/** any index past the group: the kernel picks by its own hash */
const FALLBACK = 0xffffffff;

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

interface Insn {
  code: number;
  k: number;
  /** labels of the conditional targets (undefined: the next instruction) */
  jt?: string;
  jf?: string;
  /** ja's target */
  to?: string;
}

class Assembler {
  readonly insns: Insn[] = [];
  readonly labels = new Map<string, number>();

  op(code: number, k = 0): void {
    this.insns.push({ code, k });
  }

  jump(code: number, k: number, jt?: string, jf?: string): void {
    this.insns.push({ code, k, jt, jf });
  }

  ja(to: string): void {
    this.insns.push({ code: JA, k: 0, to });
  }

  label(name: string): void {
    this.labels.set(name, this.insns.length);
  }

  /** struct sock_filter[] in host byte order: u16 code, u8 jt, u8 jf, u32 k */
  bytes(): Uint8Array {
    if (this.insns.length > MAX_INSNS) throw new RangeError(`steering program has ${this.insns.length} instructions`);
    const out = new Uint8Array(this.insns.length * 8);
    const view = new DataView(out.buffer);
    const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    this.insns.forEach((ins, at) => {
      const offset = (label: string | undefined): number => {
        if (label === undefined) return 0;
        const to = this.labels.get(label);
        if (to === undefined || to <= at) throw new RangeError(`steering program: bad label ${label}`);
        return to - at - 1;
      };
      const jt = offset(ins.jt);
      const jf = offset(ins.jf);
      if (jt > 255 || jf > 255) throw new RangeError(`steering program: jump too far at ${at}`);
      view.setUint16(at * 8, ins.code, le);
      view.setUint8(at * 8 + 2, jt);
      view.setUint8(at * 8 + 3, jf);
      view.setUint32(at * 8 + 4, ins.to !== undefined ? offset(ins.to) : ins.k >>> 0, le);
    });
    return out;
  }
}

/** the program for a group of `workers` sockets, as bytes for udp_send.c's reuseportSteer */
export function callIdSteeringProgram(workers: number): Uint8Array {
  const a = new Assembler();
  // "\ncal", any case: the first byte of a header line, then "l-id" and the colon are checked below.
  // Positions are checked in blocks after a length check, so that no load runs past the datagram
  // (an out-of-range load would end the program with 0, the first worker)
  const BLOCK = 32;
  const NEEDLE = 0x0a63616c;
  const first = 15; // the shortest start line, "SIP/2.0 200 OK\r\n", ends at 15
  for (let b = first; b < STEER_SCAN_BYTES; b += BLOCK) {
    const last = Math.min(b + BLOCK, STEER_SCAN_BYTES) - 1;
    a.op(LD_LEN);
    a.jump(JGE_K, last + 8 + 1, 'b' + b, undefined);
    a.op(RET_K, FALLBACK);
    a.label('b' + b);
    for (let p = b; p <= last; p++) {
      a.op(LD_W_ABS, p);
      a.op(ALU_OR_K, 0x00202020);
      a.jump(JEQ_K, NEEDLE, undefined, 'n' + p);
      a.op(LDX_IMM, p + 1); // X: the "C"
      a.ja('name');
      a.label('n' + p);
    }
  }
  a.op(RET_K, FALLBACK);

  // X + 3: "l-id"; X + 7: the colon, or one blank and the colon
  a.label('name');
  a.op(LD_W_IND, 3);
  a.op(ALU_OR_K, 0x20202020);
  a.jump(JEQ_K, 0x6c2d6964, 'id', undefined);
  a.op(RET_K, FALLBACK);
  a.label('id');
  a.op(LD_B_IND, 7);
  a.jump(JEQ_K, COLON, 'colon8', undefined);
  a.jump(JEQ_K, SP, 'blank', undefined);
  a.jump(JEQ_K, HT, 'blank', undefined);
  a.op(RET_K, FALLBACK);
  a.label('blank');
  a.op(LD_B_IND, 8);
  a.jump(JEQ_K, COLON, 'colon9', undefined);
  a.op(RET_K, FALLBACK);
  a.label('colon8');
  a.op(TXA);
  a.op(ALU_ADD_K, 8);
  a.op(TAX);
  a.ja('value');
  a.label('colon9');
  a.op(TXA);
  a.op(ALU_ADD_K, 9);
  a.op(TAX);
  // up to three blanks before the value
  a.label('value');
  for (let s = 0; s < 3; s++) {
    a.op(LD_B_IND, 0);
    a.jump(JEQ_K, SP, 'skip' + s, undefined);
    a.jump(JEQ_K, HT, 'skip' + s, 'start');
    a.label('skip' + s);
    a.op(TXA);
    a.op(ALU_ADD_K, 1);
    a.op(TAX);
  }
  // M[2]: where the value starts; M[0]: the hash
  a.label('start');
  a.op(STX, 2);
  a.op(LD_IMM, FNV_OFFSET);
  a.op(ST, 0);
  const half = CALLID_HASH_BYTES / 2;
  for (let i = 0; i < CALLID_HASH_BYTES; i++) {
    // the first half's ends go through a nearby jump: a conditional jump reaches 255 instructions
    const end = i < half ? 'near' : 'done';
    a.op(LDX_MEM, 2);
    a.op(LD_B_IND, i);
    a.jump(JEQ_K, CR, end, undefined);
    a.jump(JEQ_K, LF, end, undefined);
    a.op(TAX);
    a.op(LD_MEM, 0);
    a.op(ALU_XOR_X);
    a.op(ALU_MUL_K, FNV_PRIME);
    a.op(ST, 0);
    if (i === half - 1) {
      a.ja('second');
      a.label('near');
      a.ja('done');
      a.label('second');
    }
  }
  a.label('done');
  a.op(LD_MEM, 0);
  a.op(ALU_RSH_K, 1);
  a.op(ALU_MOD_K, workers);
  a.op(RET_A);
  return a.bytes();
}

/**
 * udp_worker_concentrate: every datagram to socket `index` of the group (one worker reads all
 * while it keeps up), as bytes for udp_send.c's reuseportSteer
 */
export function oneSocketProgram(index: number): Uint8Array {
  const a = new Assembler();
  a.op(RET_K, index);
  return a.bytes();
}
