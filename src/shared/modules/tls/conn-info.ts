/**
 * What a TLS handshake established, as the $tls_* pseudo-variables read it.
 * The master describes each connection once (describeTls) and hands the
 * description to every SIP worker ahead of the connection's first message
 * (RecKind.CONN_INFO), so a route reads it without asking another thread.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

export interface CertInfo {
  /** X509 version field as OpenSSL returns it (2 for a v3 certificate) */
  readonly version: number;
  /** serial number in decimal */
  readonly serial: string;
  /** OpenSSL one-line names: /C=RO/O=example/CN=host */
  readonly subject: string;
  readonly issuer: string;
  readonly subjectFields: Readonly<Record<string, string>>;
  readonly issuerFields: Readonly<Record<string, string>>;
  readonly san: { email: string[]; dns: string[]; uri: string[]; ip: string[] };
  readonly notBefore: string;
  readonly notAfter: string;
  readonly expired: boolean;
  readonly selfSigned: boolean;
  readonly pem: string;
}

export interface TlsConnInfo {
  /** protocol version: TLSv1.2, TLSv1.3 */
  readonly version: string;
  readonly cipher: string;
  readonly cipherBits: number;
  readonly description: string;
  /** the peer presented a certificate and its chain verified */
  readonly peerVerified: boolean;
  readonly peer: CertInfo | null;
  readonly my: CertInfo | null;
  /** SNI the client asked for (inbound) or sent (outbound) */
  readonly serverName: string;
}

/** the version field of a DER certificate: [0] EXPLICIT INTEGER in the TBSCertificate, absent for v1 (0) */
function derVersion(der: Buffer): number {
  let i = 0;
  const skipHeader = (): boolean => {
    if (i + 2 > der.length) return false;
    i++; // tag
    const l = der[i++]!;
    if (l & 0x80) i += l & 0x7f;
    return true;
  };
  if (!skipHeader() || !skipHeader()) return 0; // Certificate SEQUENCE, TBSCertificate SEQUENCE
  if (der[i] !== 0xa0) return 0;
  // a0 03 02 01 vv
  return der[i + 4] ?? 0;
}

function fields(dn: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of dn.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && out[line.slice(0, eq)] === undefined) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

function describeCert(c: X509Certificate | undefined): CertInfo | null {
  if (c === undefined) return null;
  const san = { email: [] as string[], dns: [] as string[], uri: [] as string[], ip: [] as string[] };
  for (const part of (c.subjectAltName ?? '').split(/,\s*/)) {
    const m = /^(DNS|email|URI|IP Address):(.*)$/.exec(part);
    if (!m) continue;
    const v = m[2]!.replace(/^"(.*)"$/, '$1');
    if (m[1] === 'DNS') san.dns.push(v);
    else if (m[1] === 'email') san.email.push(v);
    else if (m[1] === 'URI') san.uri.push(v);
    else san.ip.push(v);
  }
  let serial: string;
  try {
    serial = BigInt(`0x${c.serialNumber}`).toString();
  } catch {
    serial = c.serialNumber;
  }
  return {
    version: derVersion(c.raw),
    serial,
    subject: `/${c.subject.split('\n').join('/')}`,
    issuer: `/${c.issuer.split('\n').join('/')}`,
    subjectFields: fields(c.subject),
    issuerFields: fields(c.issuer),
    san,
    notBefore: c.validFrom,
    notAfter: c.validTo,
    expired: Date.parse(c.validTo) < Date.now(),
    selfSigned: c.checkIssued(c) && c.verify(c.publicKey),
    pem: c.toString(),
  };
}

function bitsOf(cipher: string): number {
  if (/256|CHACHA20/i.test(cipher)) return 256;
  if (/128/.test(cipher)) return 128;
  if (/3DES|DES-CBC3/i.test(cipher)) return 168;
  return 0;
}

/** describe an established TLS connection (master side) */
export function describeTls(s: TLSSocket, serverName: string): TlsConnInfo {
  const cipher = s.getCipher();
  const version = s.getProtocol() ?? '';
  let peer: CertInfo | null = null;
  let my: CertInfo | null = null;
  try {
    peer = describeCert(s.getPeerX509Certificate());
    my = describeCert(s.getX509Certificate());
  } catch {
    // a certificate Node cannot decode: the connection still carries SIP
  }
  return {
    version,
    cipher: cipher?.name ?? '',
    cipherBits: bitsOf(cipher?.name ?? ''),
    description: `${cipher?.standardName ?? cipher?.name ?? ''} ${cipher?.version ?? version}`.trim(),
    peerVerified: peer !== null && s.authorized,
    peer,
    my,
    serverName,
  };
}

/** per SIP worker: the description of every open TLS connection, by master connection id */
export const tlsConnections = new Map<number, TlsConnInfo>();
