/** htable: $sht, $shtex, $shtcn, $shtcv, $shtinc, $shtdec, $shtrecord. */
import { type PvarSpec } from '../types.js';
import { kExpired } from './table.js';
import { count, kHt, split, write } from './runtime.js';

export const pvars: PvarSpec[] = [
  {
    name: 'sht',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      if (p === null) return null;
      return p[0].get(p[1]) ?? p[0].spec.initval;
    },
    set(ctx, v, arg) {
      const p = split(ctx, arg!);
      if (p !== null) write(ctx, p[0], p[1], v);
    },
  },
  {
    name: 'shtex',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : p[0].expiresIn(p[1]);
    },
    set(ctx, v, arg) {
      const p = split(ctx, arg!);
      if (p !== null) p[0].setExpiresIn(p[1], typeof v === 'number' ? v : parseInt(String(v ?? 0), 10) || 0);
    },
  },
  {
    name: 'shtcn',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : count(ctx, p[0], p[1], false);
    },
  },
  {
    name: 'shtcv',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : count(ctx, p[0], p[1], true);
    },
  },
  {
    name: 'shtinc',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : p[0].add(p[1], 1);
    },
  },
  {
    name: 'shtdec',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const p = split(ctx, arg!);
      return p === null ? null : p[0].add(p[1], -1);
    },
  },
  {
    name: 'shtitkey',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const it = kHt.of(ctx.svc).iterators.get(arg!);
      return it?.items[it.at]?.key ?? null;
    },
  },
  {
    name: 'shtitval',
    arg: 'required',
    dynamicArg: true,
    get(ctx, arg) {
      const it = kHt.of(ctx.svc).iterators.get(arg!);
      return it?.items[it.at]?.value ?? null;
    },
  },
  // the expired item, in event_route[htable:expired:<table>]
  {
    name: 'shtrecord',
    arg: 'required',
    get(ctx, arg) {
      const r = kExpired.get(ctx);
      return r === undefined ? null : arg === 'key' ? r.key : arg === 'value' ? r.value : null;
    },
  },
];
