import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { hasSipp, runUac } from '../helpers/sipp.js';
import { makePki } from '../helpers/tls-certs.js';
import { freePort } from '../helpers/tls-relay.js';
import { startServer, writeCfg } from '../helpers/start-server.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SIPP_DIR = fileURLToPath(new URL('../../../test/fixtures/sipp/', import.meta.url));
const CALLS = 5;

/** Kamailio's WebSocket example shape: WSS on the tls listener through xhttp, NAT handling by nathelper aliases */
const cfg = (tlsCfg: string): string => `#!KAMAILIO
enable_tls=yes
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "nathelper.so"
loadmodule "xhttp.so"
loadmodule "websocket.so"
modparam("tls", "config", "${tlsCfg}")
modparam("registrar|nathelper", "received_avp", "$avp(RECEIVED)")
request_route {
  if (nat_uac_test(64)) {
    force_rport();
    if (is_method("REGISTER")) fix_nated_register(); else add_contact_alias();
  }
  if (is_method("REGISTER")) {
    save("location");
    exit;
  }
  if (has_totag()) {
    if (loose_route()) {
      handle_ruri_alias();
      t_relay();
      exit;
    }
    if (is_method("ACK") && t_check_trans()) t_relay();
    exit;
  }
  if (!lookup("location")) {
    sl_send_reply(404, "Not Found");
    exit;
  }
  record_route();
  t_relay();
}
onreply_route {
  if (nat_uac_test(64)) add_contact_alias();
}
event_route[xhttp:request] {
  set_reply_close();
  if ($hdr(Upgrade) =~ "websocket" && $hdr(Connection) =~ "Upgrade" && $rm =~ "GET") {
    if (ws_handle_handshake()) exit;
  }
  xhttp_reply("404", "Not Found", "", "");
}
`;

/**
 * The page's SIP user agent, as a WebRTC phone would do it with a SIP
 * library: REGISTER over WSS with a .invalid Contact, answer INVITEs 200,
 * BYEs 200. Runs in the browser (a string: it is not compiled here).
 */
const PAGE_UA = `(url) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, 'sip');
  const state = { registered: false, invites: 0, acks: 0, byes: 0, log: [] };
  window.sipState = state;
  const copy = (m, re) => m.split('\\r\\n').filter((l) => re.test(l));
  const reply = (m, code, reason, extra) => {
    const to = copy(m, /^To:/i)[0];
    const tag = /;tag=/.test(to) ? '' : ';tag=page' + state.invites;
    ws.send(['SIP/2.0 ' + code + ' ' + reason, ...copy(m, /^(Via|Record-Route|From|Call-ID|CSeq):/i), to + tag, ...extra, 'Content-Length: 0', '', ''].join('\\r\\n'));
  };
  ws.onerror = () => reject(new Error('websocket error'));
  ws.onopen = () => ws.send(['REGISTER sip:127.0.0.1 SIP/2.0', 'Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKpage1;rport', 'Max-Forwards: 70',
    'From: <sip:page@127.0.0.1>;tag=pg1', 'To: <sip:page@127.0.0.1>', 'Call-ID: page-reg-1', 'CSeq: 1 REGISTER',
    'Contact: <sip:page@df7jal23ls0d.invalid;transport=ws>', 'Expires: 600', 'User-Agent: headless chromium', 'Content-Length: 0', '', ''].join('\\r\\n'));
  ws.onmessage = (e) => {
    const m = e.data;
    state.log.push(m.split('\\r\\n')[0]);
    if (/^SIP\\/2\\.0 200 /.test(m) && /\\r\\nCSeq: 1 REGISTER/.test(m)) { state.registered = true; resolve(ws.protocol); return; }
    if (/^INVITE /.test(m)) { state.invites++; reply(m, 200, 'OK', ['Contact: <sip:page@df7jal23ls0d.invalid;transport=ws>']); }
    else if (/^ACK /.test(m)) state.acks++;
    else if (/^BYE /.test(m)) { state.byes++; reply(m, 200, 'OK', []); }
  };
})`;

test(
  'Debian chromium (headless) registers over WSS from a page and is called from a UDP sipp caller',
  {
    timeout: 120_000,
    skip: !existsSync(CHROMIUM) ? `no ${CHROMIUM} (Debian package chromium)` : !hasSipp() ? 'no sipp' : false,
  },
  async () => {
    const pki = makePki();
    const tlsCfg = join(pki.dir, 'tls.cfg');
    writeFileSync(
      tlsCfg,
      `[server:default]\ncertificate = ${pki.serverCert}\nprivate_key = ${pki.serverKey}\n\n[client:default]\nverify_certificate = no\n`,
    );
    const server = await startServer({ cfg: writeCfg(cfg(tlsCfg)), listen: ['udp:127.0.0.1:0', 'tls:127.0.0.1:0'] });
    let browser: Browser | null = null;
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: 30_000,
        // the test CA is not in chromium's store: its certificate errors are ignored (the TLS is real)
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--ignore-certificate-errors',
        ],
      });
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.setContent('<!doctype html><title>sip over wss</title><p>phone</p>');
      const protocol = await page.evaluate(`(${PAGE_UA})('wss://${server.tls[0]}/')`);
      assert.equal(protocol, 'sip', 'the handshake agreed on the sip subprotocol');
      const ul = await server.rpc('ul.lookup', ['location', 'page']);
      assert.match(JSON.stringify(ul.result), /df7jal23ls0d\.invalid;transport=ws/);
      assert.match(
        JSON.stringify(ul.result),
        /sip:127\.0\.0\.1:\d+;transport=wss/,
        'the received address of the WSS connection',
      );

      const r = await runUac({
        target: server.udp[0]!,
        scenario: SIPP_DIR + 'uac-dialog.xml',
        calls: CALLS,
        rate: 5,
        localPort: await freePort(),
        timeoutMs: 30_000,
        extra: ['-s', 'page'],
      });
      assert.equal(r.failed, 0, r.errors || r.stdout.slice(-1500));
      assert.equal(r.successful, CALLS);
      const st = (await page.evaluate('window.sipState')) as {
        invites: number;
        acks: number;
        byes: number;
        log: string[];
      };
      assert.equal(st.invites, CALLS, st.log.join('\n'));
      assert.equal(st.acks, CALLS);
      assert.equal(st.byes, CALLS);
      assert.deepEqual(errors, []);
      const ws = (await server.rpc('stats.get_statistics', ['ws:'])).result as Record<string, number>;
      assert.equal(ws['ws:successful_handshakes'], 1);
    } finally {
      await browser?.close();
      await server.stop();
      pki.remove();
    }
  },
);
