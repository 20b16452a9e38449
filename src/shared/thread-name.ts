import { closeSync, openSync, readSync, readlinkSync, writeFileSync } from 'node:fs';

/**
 * Names the calling OS thread (Linux: /proc/thread-self/comm, 15 bytes at
 * most), so that `top -H`, `ps -L` and the bench's CPU per thread tell the
 * SIP workers and the dispatcher from V8's helper threads, which Node names
 * all "node". Best effort: elsewhere it does nothing.
 */
export function nameThread(name: string): void {
  try {
    writeFileSync('/proc/thread-self/comm', name.slice(0, 15));
  } catch {
    // not Linux, or /proc not mounted: the threads keep the name "node"
  }
}

/** the calling thread's Linux thread id (/proc/thread-self links to `<pid>/task/<tid>`); null elsewhere */
export function osThreadId(): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').at(-1));
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/**
 * A /proc file read again and again through one descriptor: a read at offset 0 has the kernel
 * generate it afresh, with no open, close or buffer per read. The concentrator reads each SIP
 * worker's schedstat and /proc/stat ten times a second; with readFileSync that cost an idle
 * server's main thread about 4 ms of CPU a second more, 54 µs a call at s3's 80 calls/s.
 */
export class ProcFile {
  /** one buffer for all: the first line of the files read here fits, and reads never overlap */
  static readonly #buf = Buffer.allocUnsafe(256);
  #fd: number | null;
  readonly #numbers: number[] = [];

  constructor(path: string) {
    try {
      this.#fd = openSync(path, 'r');
    } catch {
      // not Linux, or the thread gone: every read says null
      this.#fd = null;
    }
  }

  /**
   * the numbers of the file's first line, in order (words that are not numbers skipped: "cpu" of
   * /proc/stat); null where it cannot be read. The array is reused by the next read
   */
  firstLineNumbers(): readonly number[] | null {
    if (this.#fd === null) return null;
    const buf = ProcFile.#buf;
    let n: number;
    try {
      n = readSync(this.#fd, buf, 0, buf.length, 0);
    } catch {
      return null;
    }
    const out = this.#numbers;
    out.length = 0;
    let value = -1;
    for (let i = 0; i <= n; i++) {
      const c = i < n ? buf[i]! : 10;
      if (c >= 48 && c <= 57) value = (value < 0 ? 0 : value * 10) + (c - 48);
      else {
        if (value >= 0) out.push(value);
        value = -1;
        if (c === 10) break;
      }
    }
    return out;
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

/**
 * CPU time of a thread of this process so far, in ns (the first field of its schedstat: time on a
 * CPU, as the scheduler counts it); null where it cannot be read (not Linux, the thread gone)
 */
export class ThreadCpuClock {
  readonly #file: ProcFile;

  constructor(tid: number) {
    this.#file = new ProcFile(`/proc/self/task/${tid}/schedstat`);
  }

  ns(): number | null {
    return this.#file.firstLineNumbers()?.[0] ?? null;
  }

  close(): void {
    this.#file.close();
  }
}
