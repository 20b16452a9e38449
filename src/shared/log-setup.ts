import { nativeUnixSend } from './native/udp-send.js';
import { FACILITIES, type Logger, type SyslogSink } from './log.js';

/** where syslog(3) writes; a test or a chroot may point it elsewhere */
export const SYSLOG_SOCKET = process.env.SWITCHYARD_SYSLOG_SOCKET || '/dev/log';

export interface LogSettings {
  /** one Int32 per thread row: each thread's threshold, changed at run time by corex.debug/log_level */
  readonly levelsSab: SharedArrayBuffer;
  /** false: syslog (log_stderror=no without -E) */
  readonly stderr: boolean;
  readonly facility: string;
  readonly ident: string;
}

/**
 * Point a thread's logger at the shared thresholds and, with
 * log_stderror=no, at syslog. A datagram that cannot be sent (no syslog
 * daemon, no native addon) is written to stderr instead, with one warning.
 */
export function setupLog(log: Logger, row: number, s: LogSettings): void {
  log.shareLevels(new Int32Array(s.levelsSab), row);
  if (s.stderr) return;
  const send = nativeUnixSend;
  let warned = false;
  const sink: SyslogSink = {
    facility: FACILITIES[s.facility] ?? FACILITIES.LOG_DAEMON!,
    ident: s.ident,
    send(datagram) {
      const n = send === null ? -1 : send(SYSLOG_SOCKET, datagram);
      if (n >= 0) return;
      if (!warned) {
        warned = true;
        process.stderr.write(
          `switchyard: cannot log to syslog on ${SYSLOG_SOCKET} (${send === null ? 'native addon not built' : `errno ${-n}`}); logging to stderr\n`,
        );
      }
      // the text after the syslog header
      const text = datagram.toString('utf8');
      process.stderr.write(text.slice(text.indexOf(']: ') + 3) + '\n');
    },
  };
  log.syslog = sink;
}
