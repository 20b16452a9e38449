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

      // load: 1000 calls at 100/s; the page must show calls/s and messages/s above 0 on a worker
      // while the load lasts
      const uac = runUac({
        target: server.udp[0]!,
        calls: 1000,
        rate: 100,
        localPort: await freeUdpPort(),
        timeoutMs: 30_000,
      });
      // the figures are read when they show the load (read later, they could already show the end of the run)
      const seen = (await (
        await page.waitForFunction(
          `(() => {
            const num = (id) => Number(document.getElementById(id).textContent.replace(/,/g, ''));
            const cps = num('v-cps'), rps = num('v-rps');
            return cps > 20 && rps >= cps ? { cps, rps } : false;
          })()`,
          undefined,
          { timeout: 20_000 },
        )
      ).jsonValue()) as { cps: number; rps: number };
      await page.waitForFunction(
        `[...document.querySelectorAll('#threads tr')].filter((tr) => /SIP worker/.test(tr.textContent) && Number(tr.children[1].textContent.replace(/,/g, '')) > 0).length >= 1`,
        undefined,
        { timeout: 10_000 },
      );
      // a few seconds of history in the charts
      await page.waitForFunction(`hist.cps.length >= 5`, undefined, { timeout: 15_000 });
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'status-page.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 10_000);
      process.stdout.write(
        `# status page under load: ${seen.cps} calls/s, ${seen.rps} requests/s; screenshot ${shot}\n`,
      );
      const r = await uac;
      assert.equal(r.failed, 0, `${r.failed} of ${r.successful + r.failed} calls failed: ${r.errors}`);
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
