/**
 * A small benchmark harness: warm up, then run `fn` in batches for a fixed
 * time, several rounds, and report ops/s with the spread between rounds.
 */
import { cpus } from 'node:os';

export interface MicroResult {
  name: string;
  opsPerSec: number;
  nsPerOp: number;
  spreadPct: number;
}

export function bench(
  name: string,
  fn: () => unknown,
  opts: { rounds?: number; ms?: number; batch?: number } = {},
): MicroResult {
  const rounds = opts.rounds ?? 5;
  const ms = opts.ms ?? 300;
  const batch = opts.batch ?? 1000;
  let sink: unknown;
  for (let i = 0; i < batch * 20; i++) sink = fn(); // warm-up: let the JIT settle
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let ops = 0;
    const t0 = process.hrtime.bigint();
    const end = t0 + BigInt(ms) * 1_000_000n;
    let now = t0;
    while (now < end) {
      for (let i = 0; i < batch; i++) sink = fn();
      ops += batch;
      now = process.hrtime.bigint();
    }
    rates.push(ops / (Number(now - t0) / 1e9));
  }
  if (sink === Symbol.for('never')) console.log(sink);
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const spread = ((Math.max(...rates) - Math.min(...rates)) / mean) * 100;
  const res = {
    name,
    opsPerSec: Math.round(mean),
    nsPerOp: Math.round(1e9 / mean),
    spreadPct: Math.round(spread * 10) / 10,
  };
  console.log(
    `${name.padEnd(44)} ${String(res.opsPerSec).padStart(12)} ops/s  ${String(res.nsPerOp).padStart(7)} ns/op  ±${res.spreadPct}%`,
  );
  return res;
}

export function header(): void {
  console.log(`node ${process.version}, ${cpus()[0]?.model ?? '?'} × ${cpus().length}`);
}
