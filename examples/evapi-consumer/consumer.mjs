// An evapi consumer for evapi.cfg: reads netstrings ("<len>:<json>,") from
// the event socket and answers every call with "allow <index> <label>".
import net from 'node:net';

let sock;
let buf = '';
const send = (text) => sock.write(`${Buffer.byteLength(text)}:${text},`);
function connect() {
  sock = net.connect(8448, '127.0.0.1', () => console.log('connected to evapi on 127.0.0.1:8448'));
  sock.on('data', onData);
  // the proxy not up yet, or restarted: try again
  sock.on('error', () => {});
  sock.on('close', () => setTimeout(connect, 1000));
}
connect();
function onData(d) {
  buf += d.toString('utf8');
  for (;;) {
    const colon = buf.indexOf(':');
    if (colon < 0) return;
    const len = Number(buf.slice(0, colon));
    if (buf.length < colon + 1 + len + 1) return;
    const ev = JSON.parse(buf.slice(colon + 1, colon + 1 + len));
    buf = buf.slice(colon + 1 + len + 1);
    console.log(`${ev.callid}: ${ev.from} -> ${ev.to}: allow`);
    send(`allow ${ev.tindex} ${ev.tlabel}`);
  }
}
