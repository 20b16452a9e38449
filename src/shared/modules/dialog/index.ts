/**
 * The dialog module (Kamailio's, with OpenSIPS's create_dialog and names):
 * dialogs tracked from the initial INVITE through its replies, the ACK and
 * the BYE, in the SIP worker that owns the call (every message of a call
 * reaches the same worker, so a dialog needs no lock). Profiles live in
 * shared memory (profiles.ts): any worker counts, any worker reads at once.
 * dlg.list and dlg.end_dlg go from the management interface through the
 * event dispatcher to the owning worker.
 */
import { kRrState } from '../rr/index.js';
import { type ModuleEnv, type ModuleExports } from '../types.js';
import { layout, Profiles } from './profiles.js';
import { DialogStore, kDialogStore, profilesOf } from './store.js';
import { inDialog, onReplyOut } from './track.js';
import { endWithBye, tick } from './bye.js';
import { functions } from './functions.js';
import { pvars } from './pvars.js';
import { listEntry, listAll, endDlg, profileGetSize } from './rpc.js';
import type { Bus } from '../../contract/host.js';

const NO_CFG = { defaultTimeout: 43200, dlgFlag: -1, sendBye: false, noReset: false };

/** the shared profiles, in the master and the SIP workers */
function profilesIn(env: ModuleEnv): Profiles | null {
  const { noValue, withValue } = profilesOf(env.params);
  return env.shared ? new Profiles(env.shared, layout(noValue, withValue).defs) : null;
}

export const dialog: ModuleExports<DialogStore> = {
  name: 'dialog',
  callState: true,
  params: [
    {
      name: 'default_timeout',
      type: 'int',
      default: 43200,
      check: (v) => (Number(v) > 0 ? null : 'must be > 0 (seconds)'),
    },
    {
      name: 'dlg_flag',
      type: 'flag',
      default: -1,
      check: (v) => (Number(v) >= -1 && Number(v) < 32 ? null : 'a message flag, 0..31'),
    },
    { name: 'send_bye', type: 'int', default: 0 },
    { name: 'timeout_noreset', type: 'int', default: 0 },
    { name: 'profiles_no_value', type: 'str', default: '' },
    { name: 'profiles_with_value', type: 'str', default: '' },
    {
      name: 'db_mode',
      type: 'int',
      default: 0,
      check: (v) => (v === 0 ? null : 'only db_mode 0 (memory only) is available'),
    },
    { name: 'db_url', type: 'str', default: '', noEffect: 'dialogs are kept in memory only (db_mode 0)' },
    { name: 'dlg_match_mode', type: 'int', default: 1, noEffect: 'in-dialog requests are matched by Call-ID and tags' },
    { name: 'detect_spirals', type: 'int', default: 1, noEffect: 'a spiralled INVITE is a new dialog' },
    { name: 'timeout_avp', type: 'str', default: '', noEffect: 'use dlg_set_timeout() or $DLG_timeout' },
    { name: 'dlg_extra_hdrs', type: 'str', default: '', noEffect: 'the BYEs carry no extra headers' },
    { name: 'enable_stats', type: 'int', default: 1 },
  ],
  validate(params) {
    const { noValue, withValue } = profilesOf(params);
    const dup = noValue.find((n) => withValue.includes(n));
    return dup ? `profile "${dup}" is in both profiles_no_value and profiles_with_value` : null;
  },
  functions,
  pvars,
  counters: [
    { name: 'active_dialogs', kind: 'gauge', description: 'confirmed dialogs' },
    { name: 'early_dialogs', kind: 'gauge', description: 'dialogs with a provisional reply only' },
    { name: 'processed_dialogs', kind: 'counter', description: 'dialogs created' },
    { name: 'expired_dialogs', kind: 'counter', description: 'dialogs ended by their timeout' },
    { name: 'failed_dialogs', kind: 'counter', description: 'dialogs whose INVITE failed' },
  ],
  allocShared(params) {
    const { noValue, withValue } = profilesOf(params);
    return new SharedArrayBuffer(layout(noValue, withValue).ints * 4);
  },
  rpc: [
    { name: 'dlg.list', doc: 'every dialog of every SIP worker', handler: (_p, env) => listAll(env) },
    { name: 'dlg_list', doc: "OpenSIPS's name for dlg.list", handler: (_p, env) => listAll(env) },
    { name: 'dlg.end_dlg', doc: 'end a dialog with a BYE to both sides: h_entry, h_id', handler: endDlg },
    { name: 'dlg_end_dlg', doc: "OpenSIPS's name for dlg.end_dlg", handler: endDlg },
    { name: 'dlg.profile_get_size', doc: 'dialogs in a profile: profile[, value]', handler: profileGetSize },
    { name: 'profile_get_size', doc: "OpenSIPS's name for dlg.profile_get_size", handler: profileGetSize },
  ],
  state: kDialogStore,
  initMaster: (env: ModuleEnv) => new DialogStore(NO_CFG, profilesIn(env), null, env.workerId, null),
  initDispatcher(env: ModuleEnv): DialogStore {
    const bus: Bus = env.bus;
    bus.on('dialog.list', async () => {
      const parts = await Promise.all(
        Array.from({ length: env.workers }, (_, w) => bus.request(w, 'dialog.list_local', null).catch(() => [])),
      );
      return (parts as unknown[][]).flat();
    });
    bus.on('dialog.end', async (m) => {
      const { hEntry, hId } = m as { hEntry: number; hId: number };
      if (hEntry < 0 || hEntry >= env.workers) return false;
      return bus.request(hEntry, 'dialog.end_local', hId);
    });
    // the dialog pseudo-variables of an event route find no dialog here
    return new DialogStore(NO_CFG, null, null, env.workerId, null);
  },
  initWorker(env: ModuleEnv): DialogStore {
    const p = env.params;
    const cfg = {
      defaultTimeout: Number(p.get('default_timeout')),
      dlgFlag: Number(p.get('dlg_flag')),
      sendBye: Number(p.get('send_bye')) !== 0,
      noReset: Number(p.get('timeout_noreset')) !== 0,
    };
    const store = new DialogStore(cfg, profilesIn(env), env.svc ?? null, env.workerId, env.counters);
    env.svc?.tm?.onReplyOut(onReplyOut);
    // in-dialog requests are seen where loose_route() takes our Route (rr's callbacks, as Kamailio's dialog)
    env.states.whenReady(kRrState, (rr) => {
      if (!rr.onLooseRoute.includes(inDialog)) rr.onLooseRoute.push(inDialog);
    });
    env.bus.on('dialog.list_local', () => [...store.byId.values()].map((d) => listEntry(store, d)));
    env.bus.on('dialog.end_local', (hId) => {
      const d = store.byId.get(Number(hId));
      if (!d) return false;
      endWithBye(store, d, 'ended');
      return true;
    });
    store.timer = setInterval(() => tick(store), 1000);
    store.timer.unref();
    return store;
  },
  destroy(store?: DialogStore): void {
    if (store?.timer) clearInterval(store.timer);
  },
};
