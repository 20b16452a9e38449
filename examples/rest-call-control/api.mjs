// A tiny call-control API for call-control.cfg: callers whose number ends
// in 9 are refused with 403, everyone else is allowed. Node only, no deps.
import http from 'node:http';

const port = Number(process.env.PORT ?? 8082);
http
  .createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const call = JSON.parse(body || '{}');
      const refused = /9$/.test(call.from ?? '');
      const answer = refused ? { code: 403, reason: 'Caller Barred' } : { code: 200 };
      console.log(`${call['call-id']}: ${call.from} -> ${call.to}: ${answer.code}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  })
  .listen(port, '127.0.0.1', () => console.log(`call-control API on 127.0.0.1:${port}`));
