import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { runCli, startServer, writeCfg, type RunningServer, expectLog } from '../../helpers/start-server.js';
import { UdpPeer } from '../../helpers/sip-socket.js';
import { backends, freshDb } from '../../helpers/db.js';
import { parseDbUrl } from '../../../src/shared/modules/db/url.js';
import { challengesOf, credentials, request, ruriOf } from '../auth/digest-client.js';

/** a TCP relay in front of a database server that the test can cut: 'up', 'blackhole' (accepts, never answers) or 'down' (refuses) */
async function relay(target: {
  host: string;
  port: number;
}): Promise<{ port: number; mode(m: 'up' | 'blackhole' | 'down'): Promise<void>; close(): Promise<void> }> {
  let mode: 'up' | 'blackhole' | 'down' = 'up';
  const open = new Set<net.Socket>();
  let server: net.Server | null = null;
  let port = 0;
  const listen = (): Promise<void> =>
    new Promise((resolve) => {
      server = net.createServer((c) => {
        open.add(c);
        c.on('close', () => open.delete(c));
        c.on('error', () => {});
        if (mode === 'blackhole') return;
        const up = net.connect(target.port, target.host);
        open.add(up);
        up.on('close', () => (open.delete(up), c.destroy()));
        up.on('error', () => c.destroy());
        c.on('close', () => up.destroy());
        c.pipe(up).pipe(c);
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as net.AddressInfo).port;
        resolve();
      });
    });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      for (const s of open) s.destroy();
      if (server === null) return resolve();
      server.close(() => resolve());
      server = null;
    });
  await listen();
  return {
    port,
    async mode(m) {
      await stop();
      mode = m;
      if (m !== 'down') await listen();
    },
    close: stop,
  };
}

const CFG = (url: string): string => `#!KAMAILIO
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "db_mysql.so"
modparam("db_mysql", "timeout_interval", 1)
modparam("auth_db", "db_url", "${url}")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "cache_ttl", 0)
request_route {
    if (!www_authenticate("$fd", "subscriber")) {
        append_to_reply("X-Auth-Rc: $rc\\r\\n");
        www_challenge("$fd", "0");
        exit;
    }
    sl_send_reply("200", "OK");
}
`;

const dbs = (await backends()).filter((b) => b.name !== 'SQLite');

for (const b of dbs) {
  describe(`${b.name} down, then back`, { skip: b.skip }, () => {
    let fresh: Awaited<ReturnType<typeof freshDb>> | undefined;
    let url = '';
    let server: RunningServer;
    let peer: UdpPeer;
    let proxy: string;
    let cut: Awaited<ReturnType<typeof relay>>;

    before(async () => {
      fresh = await freshDb(b);
      url = fresh.url;
      for (const args of [
        ['db', 'init', url],
        ['db', 'add-user', 'alice@127.0.0.1', 'secret', '--db', url],
      ]) {
        const r = await runCli(args);
        assert.equal(r.code, 0, r.stderr);
      }
      const u = parseDbUrl(url);
      cut = await relay({ host: u.host, port: u.port });
      const viaRelay = `${u.kind === 'postgres' ? 'postgres' : 'mysql'}://${u.user}:${u.password}@127.0.0.1:${cut.port}/${u.database}`;
      server = await startServer({ cfg: writeCfg(CFG(viaRelay)), workers: 1, listen: ['udp:127.0.0.1:0'] });
      proxy = server.udp[0]!;
      peer = await UdpPeer.open();
    });
    after(async () => {
      peer?.close();
      await server?.stop();
      await cut?.close();
      await fresh?.drop();
    });

    async function register(): Promise<{ reply: string; ms: number }> {
      const c = challengesOf(await request(peer, proxy, { method: 'REGISTER', from: 'alice' }))[0]!;
      const t0 = Date.now();
      const reply = await request(peer, proxy, {
        method: 'REGISTER',
        from: 'alice',
        extra: [
          credentials({
            hdr: 'Authorization',
            user: 'alice',
            password: 'secret',
            realm: c.realm,
            nonce: c.nonce,
            method: 'REGISTER',
            uri: ruriOf('REGISTER', proxy),
          }),
        ],
      });
      return { reply, ms: Date.now() - t0 };
    }

    test(
      'up: 200; no answer: 500 within the 1 s timeout; refused: 500 at once; back: 200 again',
      { timeout: 30_000 },
      async () => {
        assert.match((await register()).reply, /^SIP\/2\.0 200 OK\r\n/);
        await cut.mode('blackhole');
        const hung = await register();
        assert.match(hung.reply, /^SIP\/2\.0 500 Server Internal Error\r\n/);
        assert.ok(hung.ms >= 900 && hung.ms < 3000, `answered after ${hung.ms} ms`);
        await cut.mode('down');
        const refused = await register();
        assert.match(refused.reply, /^SIP\/2\.0 500 Server Internal Error\r\n/);
        assert.ok(refused.ms < 1500, `answered after ${refused.ms} ms`);
        await expectLog(
          server,
          /auth: cannot get the credentials of alice: .*(ECONNREFUSED|no answer within 1000 ms|connect)/,
        );
        await cut.mode('up');
        assert.match((await register()).reply, /^SIP\/2\.0 200 OK\r\n/);
      },
    );
  });
}
