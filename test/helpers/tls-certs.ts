import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  readonly dir: string;
  /** the test CA's certificate (trust anchor for ca_list) */
  readonly caCert: string;
  /** server: CN=127.0.0.1, SAN IP:127.0.0.1, DNS:sip.test; signed by the CA */
  readonly serverCert: string;
  readonly serverKey: string;
  /** a second server identity for SNI tests: CN=other.test */
  readonly otherCert: string;
  readonly otherKey: string;
  /** a client: CN=alice, signed by the CA */
  readonly clientCert: string;
  readonly clientKey: string;
  /** a self-signed client nobody trusts: CN=mallory */
  readonly rogueCert: string;
  readonly rogueKey: string;
  read(file: string): Buffer;
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** a throw-away PKI made with openssl in a temporary directory (EC P-256 keys: quick to make) */
export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-pki-'));
  const key = (name: string): void =>
    openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
  key('ca');
  openssl(dir, [
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/C=RO/O=switchyard test/CN=switchyard test CA',
    '-days',
    '2',
    '-out',
    'ca.pem',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaf = (name: string, subj: string, san: string): void => {
    key(name);
    openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', subj, '-out', `${name}.csr`]);
    writeFileSync(
      join(dir, `${name}.ext`),
      `basicConstraints=CA:FALSE\nsubjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`,
    );
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ]);
  };
  leaf('server', '/C=RO/L=Bucharest/O=switchyard/OU=proxy/CN=127.0.0.1', 'IP:127.0.0.1,DNS:sip.test');
  leaf('other', '/C=RO/O=switchyard/CN=other.test', 'DNS:other.test');
  leaf('client', '/C=RO/ST=Ilfov/O=switchyard/CN=alice', 'email:alice@sip.test,URI:sip:alice@sip.test');
  key('rogue');
  openssl(dir, [
    'req',
    '-x509',
    '-new',
    '-key',
    'rogue.key',
    '-subj',
    '/CN=mallory',
    '-days',
    '2',
    '-out',
    'rogue.pem',
  ]);
  const f = (n: string): string => join(dir, n);
  return {
    dir,
    caCert: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    otherCert: f('other.pem'),
    otherKey: f('other.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    rogueCert: f('rogue.pem'),
    rogueKey: f('rogue.key'),
    read: (file) => readFileSync(file),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
