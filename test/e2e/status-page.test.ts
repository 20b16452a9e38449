import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { startServer, writeCfg } from '../helpers/start-server.js';
import { hasSipp, runUac } from '../helpers/sipp.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** kept after the run: test-artifacts/ at the repository root */
export const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url));

const CFG = `#!KAMAILIO
loadmodule "sl.so"
request_route {
    sl_send_reply(200, "OK");
}
`;

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test(
  'the status page loads in headless chromium and its numbers move under sipp load; screenshot kept',
  {
    timeout: 120_000,
    skip: !existsSync(CHROMIUM) ? `no ${CHROMIUM} (Debian package chromium)` : !hasSipp() ? 'no sipp' : false,
  },
  async () => {
    const server = await startServer({ cfg: writeCfg(CFG), workers: 2, args: ['--mi-token', 'page-token'] });
    let browser: Browser | null = null;
    try {
      // the flags that keep a headless chromium off the network (this machine has none); playwright gives it a fresh profile
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: 30_000,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const external: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(`http://${server.mi}/`)) external.push(r.url());
      });
      await page.goto(`http://${server.mi}/?token=page-token`);
      await page.waitForFunction(`/SIP workers/.test(document.getElementById('sub').textContent)`, undefined, {
        timeout: 15_000,
      });
      assert.match((await page.textContent('#sub')) ?? '', /switchyard .* 2 SIP workers/);
      assert.equal(await page.locator('#threads tr').count(), 4);

      // load: 600 calls at 100/s; the page must show calls/s and messages/s above 0 on the worker that
      // reads sipp's datagrams (one source address and port: the kernel gives them all to one worker's socket)
      const uac = runUac({
        target: server.udp[0]!,
        calls: 600,
        rate: 100,
        localPort: await freeUdpPort(),
        timeoutMs: 30_000,
      });
      await page.waitForFunction(
        `Number(document.getElementById('v-cps').textContent.replace(/,/g, '')) > 20`,
        undefined,
        { timeout: 20_000 },
      );
      await page.waitForFunction(
        `[...document.querySelectorAll('#threads tr')].filter((tr) => /SIP worker/.test(tr.textContent) && Number(tr.children[1].textContent.replace(/,/g, '')) > 0).length >= 1`,
        undefined,
        { timeout: 10_000 },
      );
      // a few seconds of history in the charts
      await page.waitForFunction(`hist.cps.length >= 5`, undefined, { timeout: 15_000 });
      const cps = Number(((await page.textContent('#v-cps')) ?? '0').replace(/,/g, ''));
      const rps = Number(((await page.textContent('#v-rps')) ?? '0').replace(/,/g, ''));
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'status-page.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 10_000);
      process.stdout.write(`# status page under load: ${cps} calls/s, ${rps} requests/s; screenshot ${shot}\n`);
      const r = await uac;
      assert.equal(r.failed, 0, r.errors);
      assert.ok(cps > 20 && rps >= cps, `${cps} calls/s, ${rps} requests/s`);
      assert.deepEqual(errors, []);
      assert.deepEqual(external, [], 'the page loads nothing from elsewhere');
      // without the token the page's data is refused
      const denied = await fetch(`http://${server.mi}/`);
      assert.equal(denied.status, 401);
    } finally {
      await browser?.close();
      await server.stop();
    }
  },
);
