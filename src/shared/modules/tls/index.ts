/**
 * SIP over TLS: Kamailio's `tls` module and OpenSIPS's `tls_mgm` (with
 * `proto_tls`). The transport itself is the master's (src/main/transport):
 * these tables carry the configuration the master builds its contexts from,
 * the $tls_* pseudo-variables and is_peer_verified() that routes read, and
 * the reload/list management commands. See README.md.
 */
import {
  RouteKind,
  type FunctionSpec,
  type ModParamSpec,
  type ModuleEnv,
  type ModuleExports,
  type PvarSpec,
  type RpcSpec,
  type ScriptContext,
  type Value,
} from '../types.js';
import {
  checkProfileFiles,
  kamailioProfiles,
  MGM_DOMAIN_PARAMS,
  parseMethod,
  tlsMgmProfiles,
  type TlsProfile,
} from './config.js';
import { tlsConnections, type CertInfo, type TlsConnInfo } from './conn-info.js';
import { SwitchyardError } from '../../errors.js';

type Params = ModuleEnv['params'];

const str = (name: string, extra: Partial<ModParamSpec> = {}): ModParamSpec => ({ name, type: 'str', ...extra });
const int = (name: string, extra: Partial<ModParamSpec> = {}): ModParamSpec => ({ name, type: 'int', ...extra });
const methodCheck = (v: number | string): string | null => {
  const m = parseMethod(String(v).replace(/^\[[^\]]*\]/, ''));
  return typeof m === 'string' ? m : null;
};

/** Kamailio tls modparams that are profile options (the defaults of every profile) */
const KAM_PROFILE_PARAMS: Record<string, string> = {
  tls_method: 'method',
  certificate: 'certificate',
  private_key: 'private_key',
  ca_list: 'ca_list',
  verify_certificate: 'verify_certificate',
  verify_depth: 'verify_depth',
  require_certificate: 'require_certificate',
  cipher_list: 'cipher_list',
  server_name: 'server_name',
};

/** accepted so that scripts keep their lines; they change nothing here (warned at start, listed in the README) */
const KAM_INERT = [
  'ca_path',
  'crl',
  'tls_disable_compression',
  'ssl_release_buffers',
  'ssl_freelist_max_len',
  'ssl_max_send_fragment',
  'ssl_read_ahead',
  'send_close_notify',
  'con_ct_wq_max',
  'ct_wq_max',
  'ct_wq_blk_size',
  'tls_log',
  'tls_debug',
  'low_mem_threshold1',
  'low_mem_threshold2',
  'tls_force_run',
  'session_cache',
  'session_id',
  'renegotiation',
  'xavp_cfg',
  'event_callback',
  'rand_engine',
  'engine',
  'engine_config',
  'engine_algorithms',
  'verify_client',
  'init_mode',
  'keylog_mode',
  'keylog_file',
  'keylog_peer',
  'verify_depth',
];
const KAM_INT = new Set([
  'verify_certificate',
  'verify_depth',
  'require_certificate',
  'connection_timeout',
  'tls_disable_compression',
  'ssl_release_buffers',
  'ssl_freelist_max_len',
  'ssl_max_send_fragment',
  'ssl_read_ahead',
  'send_close_notify',
  'con_ct_wq_max',
  'ct_wq_max',
  'ct_wq_blk_size',
  'tls_log',
  'tls_debug',
  'low_mem_threshold1',
  'low_mem_threshold2',
  'tls_force_run',
  'session_cache',
  'renegotiation',
  'init_mode',
  'keylog_mode',
]);

const INERT_NOTE = "Node's OpenSSL runs with its own settings for this";
const KAM_PARAMS: readonly ModParamSpec[] = [
  str('config'),
  int('connection_timeout'),
  ...[...new Set([...Object.keys(KAM_PROFILE_PARAMS), ...KAM_INERT])].map((n) => {
    const extra: Partial<ModParamSpec> = KAM_INERT.includes(n)
      ? { noEffect: INERT_NOTE }
      : n === 'tls_method'
        ? { check: methodCheck }
        : {};
    return KAM_INT.has(n) ? int(n, extra) : str(n, extra);
  }),
];

function kamParams(p: Params): { defaults: Map<string, string>; config: string | null } {
  const defaults = new Map<string, string>();
  for (const [param, key] of Object.entries(KAM_PROFILE_PARAMS)) {
    const v = p.get(param);
    if (v !== undefined) defaults.set(key, String([v].flat()[0]));
  }
  const c = p.get('config');
  return { defaults, config: c === undefined || c === '' ? null : String(c) };
}

/** the profiles a script's tls/tls_mgm modparams describe; errors (bad options, unreadable files) are collected */
export function profilesOf(module: 'tls' | 'tls_mgm', params: Params, cfgFile: string, errors: string[]): TlsProfile[] {
  const profiles =
    module === 'tls' ? kamailioProfiles(kamParams(params), cfgFile, errors) : tlsMgmProfiles(params, cfgFile, errors);
  errors.push(...checkProfileFiles(profiles));
  return profiles;
}

// ---- pseudo-variables: the same names in both projects ----

function info(ctx: ScriptContext): TlsConnInfo | undefined {
  return ctx.rcv.proto === 'tls' ? tlsConnections.get(ctx.rcv.connId) : undefined;
}

type CertGetter = (c: CertInfo, i: TlsConnInfo) => Value;

const FIELD: Record<string, string> = {
  cn: 'CN',
  locality: 'L',
  country: 'C',
  state: 'ST',
  organization: 'O',
  unit: 'OU',
  uid: 'UID',
};

function pv(name: string, get: (i: TlsConnInfo) => Value): PvarSpec {
  return {
    name,
    arg: 'none',
    get: (ctx) => {
      const i = info(ctx);
      return i === undefined ? null : get(i);
    },
  };
}

function certPvars(): PvarSpec[] {
  const out: PvarSpec[] = [];
  for (const who of ['peer', 'my'] as const) {
    const cert =
      (g: CertGetter) =>
      (i: TlsConnInfo): Value => {
        const c = who === 'peer' ? i.peer : i.my;
        return c === null ? null : g(c, i);
      };
    out.push(
      pv(
        `tls_${who}_version`,
        cert((c) => c.version),
      ),
    );
    out.push(
      pv(
        `tls_${who}_serial`,
        cert((c) => (/^\d{1,15}$/.test(c.serial) ? Number(c.serial) : c.serial)),
      ),
    );
    for (const part of ['subject', 'issuer'] as const) {
      out.push(
        pv(
          `tls_${who}_${part}`,
          cert((c) => c[part]),
        ),
      );
      for (const [suffix, key] of Object.entries(FIELD)) {
        out.push(
          pv(
            `tls_${who}_${part}_${suffix}`,
            cert((c) => (part === 'subject' ? c.subjectFields : c.issuerFields)[key] ?? null),
          ),
        );
      }
    }
    out.push(
      pv(
        `tls_${who}_san_email`,
        cert((c) => c.san.email[0] ?? null),
      ),
    );
    out.push(
      pv(
        `tls_${who}_san_hostname`,
        cert((c) => c.san.dns[0] ?? null),
      ),
    );
    out.push(
      pv(
        `tls_${who}_san_uri`,
        cert((c) => c.san.uri[0] ?? null),
      ),
    );
    out.push(
      pv(
        `tls_${who}_san_ip`,
        cert((c) => c.san.ip[0] ?? null),
      ),
    );
    out.push(
      pv(
        `tls_${who}_raw_cert`,
        cert((c) => c.pem),
      ),
    );
    out.push(
      pv(
        `tls_${who}_urlencoded_cert`,
        cert((c) => encodeURIComponent(c.pem)),
      ),
    );
  }
  return out;
}

const PVARS: readonly PvarSpec[] = [
  pv('tls_version', (i) => i.version),
  pv('tls_description', (i) => i.description),
  pv('tls_cipher_info', (i) => i.cipher),
  pv('tls_cipher_bits', (i) => i.cipherBits),
  pv('tls_peer_verified', (i) => (i.peerVerified ? 1 : 0)),
  // no CRL is consulted here
  pv('tls_peer_revoked', () => 0),
  pv('tls_peer_expired', (i) => (i.peer === null ? null : i.peer.expired ? 1 : 0)),
  pv('tls_peer_selfsigned', (i) => (i.peer === null ? null : i.peer.selfSigned ? 1 : 0)),
  pv('tls_peer_notBefore', (i) => i.peer?.notBefore ?? null),
  pv('tls_peer_notAfter', (i) => i.peer?.notAfter ?? null),
  pv('tls_peer_server_name', (i) => i.serverName || null),
  ...certPvars(),
];

const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'is_peer_verified',
    args: [],
    routes: RouteKind.REQUEST | RouteKind.RESUME,
    fn: (ctx) => (info(ctx)?.peerVerified === true ? 1 : -1),
  },
];

function rpc(names: { reload: string; list: string; info?: string }): RpcSpec[] {
  const out: RpcSpec[] = [
    {
      name: names.reload,
      doc: 'read the certificates, keys and CA lists again; new connections use them (open ones keep theirs)',
      handler: (_params, env) => {
        const err = env.streams === undefined ? 'TLS is not set up in this process' : env.streams.tlsReload();
        if (err !== null)
          throw new SwitchyardError('SY_ERR_TLS', `reload failed, the previous configuration stays: ${err}`);
        return 'Ok. TLS configuration reloaded.';
      },
    },
    { name: names.list, doc: 'open TLS connections', handler: (_params, env) => env.streams?.list('tls') ?? [] },
  ];
  if (names.info)
    out.push({
      name: names.info,
      doc: 'TLS connection counts',
      handler: (_params, env) => env.streams?.tlsInfo() ?? {},
    });
  return out;
}

/** Kamailio tls */
export const tls: ModuleExports = {
  name: 'tls',
  params: KAM_PARAMS,
  functions: FUNCTIONS,
  pvars: PVARS,
  rpc: rpc({ reload: 'tls.reload', list: 'tls.list', info: 'tls.info' }),
  validate(params, cx) {
    const errors: string[] = [];
    profilesOf('tls', params, cx.cfgFile, errors);
    return errors.length ? errors.join('; ') : null;
  },
};

const MGM_INERT: readonly string[] = ['ca_dir', 'dh_params', 'ec_curve', 'crl_dir', 'crl_check_all'];

/** OpenSIPS proto_tls parameters: accepted, the transport is the master's (README) */
const PROTO_TLS_INERT = [
  'tls_port',
  'tls_crlf_pingpong',
  'tls_crlf_drop',
  'tls_max_msg_chunks',
  'tls_async',
  'tls_async_max_postponed_chunks',
  'trace_destination',
  'trace_on',
  'trace_filter_route',
  'tls_send_timeout',
  'client_tls_domain_avp',
  'client_sip_domain_avp',
  'db_url',
  'db_table',
  'tls_library',
];

/** OpenSIPS tls_mgm (+ proto_tls, tls_openssl: the transport and its library are built in) */
export const tlsMgm: ModuleExports = {
  name: 'tls_mgm',
  provides: ['proto_tls', 'tls_openssl', 'tls_wolfssl'],
  params: [
    str('server_domain', { multi: true }),
    str('client_domain', { multi: true }),
    ...MGM_DOMAIN_PARAMS.map((n) =>
      str(n, {
        multi: true,
        ...(n === 'tls_method' ? { check: methodCheck } : {}),
        ...(MGM_INERT.includes(n) ? { noEffect: INERT_NOTE } : {}),
      }),
    ),
    int('tls_handshake_timeout'),
    ...PROTO_TLS_INERT.map((n) =>
      /port|pingpong|drop|chunks|async|timeout|trace_on/.test(n)
        ? int(n, { noEffect: 'the transport is built into the master' })
        : str(n, { noEffect: 'the transport is built into the master' }),
    ),
  ],
  functions: FUNCTIONS,
  pvars: PVARS,
  rpc: rpc({ reload: 'tls_reload', list: 'tls_list' }),
  validate(params, cx) {
    const errors: string[] = [];
    profilesOf('tls_mgm', params, cx.cfgFile, errors);
    return errors.length ? errors.join('; ') : null;
  },
};
