/**
 * When a bench step counts: the criteria of "max cps" and the rates tried.
 * Pure functions, so that what the bench calls a pass is tested on its own.
 */

/** a step passes only within all of these */
export const CRITERIA = {
  /** failed calls / calls */
  maxFailed: 0.001,
  /** retransmissions sipp sent / messages the proxy was to receive */
  maxRetransmissions: 0.01,
  /** 99th percentile of the call's response time (INVITE → 200), ms */
  maxP99Ms: 200,
  /** achieved cps / asked rate: below this the load did not reach the server */
  minReached: 0.9,
} as const;

export interface StepFigures {
  /** calls asked of sipp */
  calls: number;
  /** calls not reported successful */
  failed: number;
  /** messages the proxy receives per call (6 for INVITE, 180, 200, ACK, BYE, 200) */
  msgsPerCall: number;
  retransmissions: number;
  rtP99Ms: number;
  /** asked rate and achieved rate (successful calls per second) */
  rate: number;
  cps: number;
}

export interface Verdict {
  verdict: 'ok' | 'fail';
  /** why a step failed, one short phrase per criterion missed */
  reasons: string[];
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

export function judge(f: StepFigures): Verdict {
  const reasons: string[] = [];
  const failed = f.calls > 0 ? f.failed / f.calls : 1;
  if (!(failed < CRITERIA.maxFailed)) reasons.push(`failed ${pct(failed)} ≥ ${pct(CRITERIA.maxFailed)}`);
  const messages = f.calls * f.msgsPerCall;
  const retrans = messages > 0 ? f.retransmissions / messages : 0;
  if (!(retrans < CRITERIA.maxRetransmissions))
    reasons.push(`retransmissions ${pct(retrans)} of messages ≥ ${pct(CRITERIA.maxRetransmissions)}`);
  if (!(f.rtP99Ms < CRITERIA.maxP99Ms)) reasons.push(`p99 ${f.rtP99Ms} ms ≥ ${CRITERIA.maxP99Ms} ms`);
  if (f.cps < f.rate * CRITERIA.minReached) reasons.push(`reached ${f.cps} of ${f.rate} cps`);
  return { verdict: reasons.length === 0 ? 'ok' : 'fail', reasons };
}

/** beyond the listed steps each rate is this much higher than the one before, rounded to 100 */
export const GROWTH = 1.25;
/** a bound on one server's steps, in case nothing ever fails */
export const MAX_STEPS = 24;

/**
 * The rate of step `i` (0-based): the listed rates, then 25% more each step,
 * so that the steps go on until one fails. Quick runs try the listed rates only.
 */
export function stepRate(listed: readonly number[], i: number): number {
  if (listed.length === 0) throw new RangeError('no listed step rates');
  if (i < listed.length) return listed[i]!;
  let r = listed[listed.length - 1]!;
  for (let k = listed.length; k <= i; k++) r = Math.max(r + 100, Math.round((r * GROWTH) / 100) * 100);
  return r;
}

/** "max cps": the highest achieved rate of a passing step, and whether a step failed above it */
export function maxCps(steps: ReadonlyArray<{ verdict: 'ok' | 'fail'; cps: number }>): {
  cps: number | null;
  /** false when no step failed: the server may do more than was tried */
  bounded: boolean;
} {
  let cps: number | null = null;
  for (const s of steps) if (s.verdict === 'ok' && (cps === null || s.cps > cps)) cps = s.cps;
  return { cps, bounded: steps.some((s) => s.verdict === 'fail') };
}
