import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export type ZoneRecord =
  | { type: 'A' | 'AAAA' | 'PTR'; name: string; ttl?: number; data: string }
  | {
      type: 'SRV';
      name: string;
      ttl?: number;
      data: { priority: number; weight: number; port: number; target: string };
    }
  | {
      type: 'NAPTR';
      name: string;
      ttl?: number;
      data: { order: number; preference: number; flags: string; services: string; regexp: string; replacement: string };
    };

/**
 * A small authoritative DNS server on 127.0.0.1 (UDP) for tests: answers
 * from `records`, NXDOMAIN for an unknown name, an empty answer (NODATA) for
 * a known name without the type asked; counts every query; `silent` makes it
 * drop queries (a server that never answers).
 */
export class TestDnsServer {
  readonly socket = dgram.createSocket('udp4');
  records: ZoneRecord[];
  silent = false;
  readonly queries: string[] = [];

  private constructor(records: ZoneRecord[]) {
    this.records = records;
  }

  static async start(records: ZoneRecord[], port = 0): Promise<TestDnsServer> {
    const s = new TestDnsServer(records);
    s.socket.on('message', (msg, rinfo) => s.#answer(msg, rinfo));
    await new Promise<void>((r) => s.socket.bind(port, '127.0.0.1', r));
    return s;
  }

  get address(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  /** queries seen for "TYPE name" */
  count(type: string, name: string): number {
    return this.queries.filter((q) => q === `${type} ${name.toLowerCase()}`).length;
  }

  #answer(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    if (!question) return;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    this.queries.push(`${question.type} ${name}`);
    if (this.silent) return;
    const known = this.records.filter((r) => r.name.toLowerCase() === name);
    const answers = known
      .filter((r) => r.type === question.type)
      .map((r) => ({ type: r.type, name: r.name, ttl: r.ttl ?? 300, class: 'IN', data: r.data }) as dnsPacket.Answer);
    const reply = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags:
        dnsPacket.AUTHORITATIVE_ANSWER | ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | (known.length === 0 ? 3 : 0),
      questions: [question],
      answers,
    });
    this.socket.send(reply, rinfo.port, rinfo.address);
  }

  close(): void {
    this.socket.close();
  }
}
