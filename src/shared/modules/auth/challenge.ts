/** auth: digest challenges (401/407, www_challenge, proxy_challenge, auth_challenge). */
import { appendToReply } from '../core/functions.js';
import { type ScriptContext } from '../types.js';
import { algorithmOf, challengeValue, type Algorithm } from './digest.js';

import { type AuthState, type HfType, CHALLENGE_HDR, defaultRealm, kAuth, kAuthReplied, kAuthStale } from './check.js';

/** the qop list of a challenge: Kamailio flags (1 auth, 2 auth-int), else the `qop` modparam */
function qopOf(cfg: AuthState, flags: number): string {
  const q = [(flags & 1) !== 0 ? 'auth' : '', (flags & 2) !== 0 ? 'auth-int' : ''].filter((x) => x !== '').join(',');
  return q !== '' ? q : cfg.qop;
}

/** the challenge header line(s) for `realm`: one per algorithm offered */
export function challengeLines(
  cfg: AuthState,
  realm: string,
  hf: HfType,
  qop: string,
  stale: boolean,
  algs: readonly Algorithm[],
): string[] {
  const nonce = cfg.store.issue(Math.floor(Date.now() / 1000) + cfg.nonceExpire);
  if (algs.length === 0) return [`${CHALLENGE_HDR[hf]}: ${challengeValue(realm, nonce, qop, stale, null)}`];
  return algs.map((alg) => `${CHALLENGE_HDR[hf]}: ${challengeValue(realm, nonce, qop, stale, alg)}`);
}

function sendReply(ctx: ScriptContext, code: number, reason: string): number {
  const tm = ctx.svc.tm;
  return tm !== null && tm.exists(ctx) ? tm.reply(ctx, code, reason) : ctx.svc.sendReply(ctx, code, reason);
}

/** www_challenge/proxy_challenge: reply 401/407 with a fresh nonce */
function challenge(
  ctx: ScriptContext,
  hf: HfType,
  realm: string,
  flags: number,
  qop: string,
  algs: readonly Algorithm[],
): number {
  if (!ctx.msg.isRequest || ctx.msg.method === 'ACK' || ctx.msg.method === 'CANCEL') return -1;
  // auth_db already answered 500 (its database failed): no second reply
  if (kAuthReplied.get(ctx) === true) return 1;
  if (realm === '') realm = defaultRealm(ctx);
  if (realm === '') {
    ctx.svc.log.err(`auth: no realm to challenge ${ctx.msg.method} with`);
    if ((flags & 4) === 0) sendReply(ctx, 500, 'Server Internal Error');
    return -1;
  }
  const stale = (flags & 16) !== 0 || kAuthStale.get(ctx) === true;
  for (const line of challengeLines(kAuth.of(ctx.svc), realm, hf, qop, stale, algs)) appendToReply(ctx, line);
  const ok = hf === 'www' ? sendReply(ctx, 401, 'Unauthorized') : sendReply(ctx, 407, 'Proxy Authentication Required');
  return ok > 0 ? 1 : -1;
}

/**
 * The second argument of www_challenge/proxy_challenge: Kamailio's flags
 * ("0", "1" …) or OpenSIPS's qop list ("auth", "auth,auth-int", "").
 */
function challengeArgs(cfg: AuthState, spec: string | undefined): { flags: number; qop: string } {
  const s = (spec ?? '').trim();
  if (/^\d+$/.test(s)) {
    const flags = Number(s);
    return { flags, qop: qopOf(cfg, flags) };
  }
  const qop = s
    .split(',')
    .map((x) => x.trim().toLowerCase())
    .filter((x) => x === 'auth' || x === 'auth-int')
    .join(',');
  return { flags: 0, qop: s === '' ? cfg.qop : qop };
}

function algorithmsArg(cfg: AuthState, spec: string | undefined): readonly Algorithm[] {
  if (spec === undefined || spec.trim() === '') return cfg.algorithms;
  return spec
    .split(',')
    .map((x) => algorithmOf(x.trim()))
    .filter((a): a is Algorithm => a !== null);
}

export const makeChallenge =
  (hf: HfType) =>
  (ctx: ScriptContext, realm: string, spec?: string, algs?: string): number => {
    const cfg = kAuth.of(ctx.svc);
    const a = challengeArgs(cfg, spec);
    return challenge(ctx, hf, realm, a.flags, a.qop, algorithmsArg(cfg, algs));
  };
