/**
 * The live status page served at `/` on the management address: one HTML
 * document, no build step, no external assets. It polls `core.status`
 * (JSON-RPC, same origin) every second and draws small canvas charts.
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>switchyard status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:16px;background:#f6f7f9;color:#1d2330}
h1{font-size:18px;margin:0 0 4px} .sub{color:#5b6475;margin-bottom:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:10px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:8px 10px}
.card .k{color:#5b6475;font-size:12px} .card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
canvas{width:100%;height:40px;display:block;margin-top:4px}
table{border-collapse:collapse;margin-top:14px;background:#fff;border:1px solid #dde1e8;width:100%}
th,td{padding:4px 8px;text-align:right;font-variant-numeric:tabular-nums;border-bottom:1px solid #eef0f4} th:first-child,td:first-child{text-align:left}
.bar{height:8px;background:#3b82f6;border-radius:2px} #err{color:#b42318}
</style></head><body>
<h1>switchyard</h1><div class="sub" id="sub">connecting…</div><div id="err"></div>
<div class="grid" id="cards"></div>
<table><thead><tr><th>thread</th><th>messages/s</th><th>load</th><th>messages</th><th>V8 heap</th></tr></thead><tbody id="threads"></tbody></table>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const CARDS = [
  ["cps", "calls/s (INVITE)", true], ["rps", "requests/s", true], ["tx", "transactions", false],
  ["suspended", "suspended requests", false], ["http", "HTTP transfers in flight", false],
  ["evapi", "evapi clients", false], ["eps", "errors/s", true], ["drops", "dropped/s", true]];
const hist = {}; let prev = null;
const cards = document.getElementById("cards");
for (const [id, label] of CARDS) {
  hist[id] = [];
  cards.insertAdjacentHTML("beforeend", '<div class="card"><div class="k">' + label + '</div><div class="v" id="v-' + id + '">–</div><canvas id="c-' + id + '" width="200" height="40"></canvas></div>');
}
function draw(id) {
  const c = document.getElementById("c-" + id), g = c.getContext("2d"), d = hist[id];
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...d);
  g.strokeStyle = "#3b82f6"; g.lineWidth = 1.5; g.beginPath();
  d.forEach((v, i) => { const x = c.width - (d.length - 1 - i) * (c.width / 59), y = c.height - 2 - (v / max) * (c.height - 4); i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke();
}
const fmt = (n) => n >= 100 ? Math.round(n).toLocaleString("en") : (Math.round(n * 10) / 10).toLocaleString("en");
const mb = (n) => (n / 1048576).toFixed(1) + " MB";
async function tick() {
  try {
    const res = await fetch("/", { method: "POST", headers: Object.assign({ "content-type": "application/json" }, token ? { authorization: "Bearer " + token } : {}), body: JSON.stringify({ jsonrpc: "2.0", method: "core.status", id: 1 }) });
    const r = (await res.json()).result;
    const s = r.totals, now = r.time;
    document.getElementById("sub").textContent = r.server + " · pid " + r.pid + " · up " + r.uptime + " s · " + r.threads.filter((t) => t.sip).length + " SIP workers";
    const dt = prev ? (now - prev.time) / 1000 : 0;
    const rate = (k) => (prev && dt > 0 ? Math.max(0, (s[k] - prev.totals[k]) / dt) : 0);
    const vals = { cps: rate("invites"), rps: rate("requests"), tx: s.transactions, suspended: s.suspended, http: s.http_inflight, evapi: s.evapi_clients, eps: rate("errors"), drops: rate("drops") };
    for (const [id, , isRate] of CARDS) {
      if (isRate && !prev) continue;
      hist[id].push(vals[id]); if (hist[id].length > 60) hist[id].shift();
      document.getElementById("v-" + id).textContent = fmt(vals[id]); draw(id);
    }
    const rows = r.threads.map((t) => {
      const p = prev && prev.threads.find((x) => x.idx === t.idx);
      const mps = p && dt > 0 ? Math.max(0, (t.msgs - p.msgs) / dt) : 0;
      return { t, mps };
    });
    const top = Math.max(1, ...rows.map((x) => x.mps));
    document.getElementById("threads").innerHTML = rows.map(({ t, mps }) => "<tr><td>" + t.idx + " " + t.dsc + "</td><td>" + fmt(mps) + '</td><td style="width:30%"><div class="bar" style="width:' + (100 * mps / top).toFixed(0) + '%"></div></td><td>' + t.msgs.toLocaleString("en") + "</td><td>" + mb(t.heap_used) + "</td></tr>").join("");
    document.getElementById("err").textContent = "";
    prev = r;
  } catch (e) {
    document.getElementById("err").textContent = "status unavailable: " + e.message;
  }
}
tick(); setInterval(tick, 1000);
</script></body></html>
`;
