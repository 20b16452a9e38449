import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { runCli, startServer, writeCfg, expectLog } from '../helpers/start-server.js';
import { UdpPeer, sipRequest } from '../helpers/sip-socket.js';

const options = (port: number, id: string, ruri = 'sip:x@127.0.0.1'): string =>
  sipRequest([
    `OPTIONS ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${id}`,
    'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=1',
    'To: <sip:b@127.0.0.1>',
    `Call-ID: ${id}@test`,
    'CSeq: 7 OPTIONS',
    'Content-Length: 0',
  ]);

async function until(f: () => boolean, ms = 4000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 25))) if (f()) return true;
  return f();
}

const DEFINES = `#!KAMAILIO
log_prefix="{$mt $cs $ci} "
loadmodule "sl.so"
loadmodule "xlog.so"
request_route {
#!ifdef WITH_X
    xlog("L_INFO", "branch X\\n");
#!else
    xlog("L_INFO", "branch plain\\n");
#!endif
    xdbg("a debug line\\n");
#!ifdef XCODE
    sl_send_reply(XCODE, "OK");
#!else
    sl_send_reply(200, "OK");
#!endif
}
`;

test('-A defines, -dd counted from WARNING, log_prefix evaluated per message (Call-ID on the line)', async () => {
  const server = await startServer({
    cfg: writeCfg(DEFINES),
    workers: 1,
    args: ['-A', 'WITH_X', '-A', 'XCODE=202', '-dd'],
  });
  try {
    const peer = await UdpPeer.open();
    peer.send(options(peer.port, 'pfx-1'), server.udp[0]!);
    const reply = await peer.waitFor(1);
    assert.match(String(reply), /^SIP\/2\.0 202 OK/);
    peer.close();
    assert.ok(await until(() => server.stderr().includes('branch X')), server.stderr());
    // kamailio's shape: process number, pid, level, the prefix, <script>
    await expectLog(server, new RegExp(` 2\\(${server.pid}\\) INFO: \\{1 7 pfx-1@test\\} <script>: branch X`));
    // -dd is INFO: the debug line is not written
    assert.doesNotMatch(server.stderr(), /a debug line/);
  } finally {
    await server.stop();
  }
});

test('--debug=3 writes DEBUG lines, and a dropped request is one of them', async () => {
  const cfg = writeCfg(DEFINES.replace('sl_send_reply(200, "OK");', 'drop;'));
  const server = await startServer({ cfg, workers: 1, args: ['--debug=3'] });
  try {
    const peer = await UdpPeer.open();
    peer.send(options(peer.port, 'dbg-1'), server.udp[0]!);
    assert.ok(
      await until(() => /DEBUG: \{1 7 dbg-1@test\} <core>: OPTIONS dropped by the script/.test(server.stderr())),
      server.stderr(),
    );
    await expectLog(server, /DEBUG: \{1 7 dbg-1@test\} <script>: a debug line/);
    await expectLog(server, /branch plain/);
    peer.close();
  } finally {
    await server.stop();
  }
});

test('log_stderror=no: RFC 3164 datagrams with log_facility and log_name on the syslog socket', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-syslog-'));
  const sock = join(dir, 'log');
  // Node cannot bind an AF_UNIX datagram socket: python3 (node-gyp's) stands for the syslog daemon
  const rx = spawn(
    existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3',
    [
      '-c',
      `import socket,sys\ns=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(${JSON.stringify(sock)})\nprint('ready', flush=True)\nwhile True:\n  d=s.recv(65536)\n  print(d.decode(), flush=True)`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let got = '';
  rx.stdout.on('data', (d: Buffer) => (got += d));
  t.after(() => {
    rx.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.ok(await until(() => got.includes('ready'), 15_000));
  const cfg = writeCfg(
    DEFINES.replace('#!KAMAILIO', '#!KAMAILIO\nlog_stderror=no\nlog_facility=LOG_LOCAL3\nlog_name="sy-test"'),
  );
  const server = await startServer({
    cfg,
    workers: 1,
    noStderrFlag: true,
    args: ['-dd'],
    env: { ...process.env, SWITCHYARD_SYSLOG_SOCKET: sock },
  });
  try {
    const peer = await UdpPeer.open();
    peer.send(options(peer.port, 'sys-1'), server.udp[0]!);
    assert.ok(await peer.waitFor(1));
    peer.close();
    // LOCAL3 (19) * 8 + info (6) = 158
    assert.ok(
      await until(() =>
        /<158>\w{3} [ \d]\d \d\d:\d\d:\d\d sy-test\[\d+\]: +2\(\d+\) INFO: \{1 7 sys-1@test\} <script>: branch plain/.test(
          got,
        ),
      ),
      got,
    );
    assert.doesNotMatch(server.stderr(), /branch plain/);
  } finally {
    await server.stop();
  }
});

const RELAY = `#!KAMAILIO
loadmodule "sl.so"
request_route {
    if ($rU == "relay") { forward(); exit; }
    sl_send_reply(200, "OK $Ri");
}
`;

test('-l with an interface name listens on its addresses; /advertised goes into the Via', async () => {
  const server = await startServer({
    cfg: writeCfg(RELAY),
    workers: 1,
    listen: ['udp:lo:0', 'udp:127.0.0.1:0/203.0.113.7:5080'],
  });
  try {
    assert.ok(
      server.udp.includes(
        '[::1]:' +
          server.udp
            .find((a) => a.startsWith('[::1]'))!
            .split(':')
            .pop(),
      ),
      server.udp.join(' '),
    );
    assert.ok(server.udp.some((a) => a.startsWith('127.0.0.1:')));
    const callee = dgram.createSocket('udp4');
    await new Promise<void>((r) => callee.bind(0, '127.0.0.1', r));
    const got = new Promise<string>((resolve) => callee.once('message', (m) => resolve(m.toString())));
    const peer = await UdpPeer.open();
    const advertised = server.udp[server.udp.length - 1]!;
    peer.send(options(peer.port, 'adv-1', `sip:relay@127.0.0.1:${callee.address().port}`), advertised);
    const text = await Promise.race([
      got,
      new Promise<string>((_, j) => setTimeout(() => j(new Error('not relayed')), 3000)),
    ]);
    assert.match(text, /\r\nVia: SIP\/2\.0\/UDP 203\.0\.113\.7:5080;branch=/);
    peer.close();
    callee.close();
  } finally {
    await server.stop();
  }
});

test(
  '-u nobody drops privileges after binding; the workers still answer; -w changes the directory, -x/-X/-L/-m/-M are warned about',
  { skip: process.getuid?.() !== 0 ? 'needs root' : false },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-wd-'));
    const cfg = writeCfg(RELAY);
    // the script's folder stays root-only: threads compile what the master read
    chmodSync(dir, 0o755);
    const server = await startServer({
      cfg,
      workers: 2,
      args: [
        '-u',
        'nobody',
        '-w',
        dir,
        '-P',
        'sy.pid',
        '-x',
        'qm',
        '-X',
        'fm',
        '-L',
        '/usr/lib/x86_64-linux-gnu/kamailio/modules',
        '-m',
        '64',
        '-M',
        '8',
      ],
    });
    try {
      const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
      assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
      assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
      assert.equal(readFileSync(`/proc/${server.pid}/cwd/sy.pid`, 'utf8'), `${server.pid}\n`);
      for (const f of ['-x qm', '-X fm', '-L /usr/lib', '-m 64', '-M 8'])
        await expectLog(server, new RegExp(`WARNING: <core>: ${f}.*no effect`));
      const peer = await UdpPeer.open();
      for (let i = 0; i < 6; i++) peer.send(options(peer.port, `uid-${i}`), server.udp[0]!);
      assert.ok(await peer.waitFor(6));
      peer.close();
      // a restarted worker compiles the script it was handed, not the file
      const killed = await server.rpc('core.kill_worker', [0]);
      assert.equal(killed.result.killed, 0);
      assert.ok(await until(() => /SIP worker 0 died/.test(server.stderr())));
      await new Promise((r) => setTimeout(r, 400));
      const again = await UdpPeer.open();
      for (let i = 0; i < 6; i++) again.send(options(again.port, `uid2-${i}`), server.udp[0]!);
      assert.ok(await again.waitFor(6), server.stderr());
      again.close();
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(existsSync(join(dir, 'sy.pid')), false);
  },
);

test("--modparam takes kamailio's modname:param:type:value; unknown flags still exit 2", async () => {
  const cfg = writeCfg(
    '#!KAMAILIO\nloadmodule "sl.so"\nloadmodule "tm.so"\nrequest_route { sl_send_reply(200, "OK"); }\n',
  );
  const ok = await runCli(['-f', cfg, '-c', '--modparam=tm:fr_timer:i:2000']);
  assert.equal(ok.code, 0, ok.stderr);
  const bad = await runCli(['-f', cfg, '-c', '--modparam=tm:no_such:i:1']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown parameter "no_such" of module "tm"/);
  const notInt = await runCli(['-f', cfg, '-c', '--modparam=tm:fr_timer:i:soon']);
  assert.equal(notInt.code, 2);
  for (const flag of ['-q', '--nope', '-d3']) {
    const r = await runCli([flag, '-c']);
    assert.equal(r.code, 2, flag);
    assert.match(r.stderr, /Usage: switchyard/);
  }
});
