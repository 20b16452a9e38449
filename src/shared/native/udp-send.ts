import { createRequire } from 'node:module';

/** sendto(2) on a UDP socket of the master: bytes sent, or -errno */
export type SendTo = (fd: number, bytes: Uint8Array, ip: string, port: number) => number;

/**
 * The native sendto (src/shared/native/udp_send.c), built by `npm ci`
 * through node-gyp; null when it was not built: threads then send through
 * the master as before.
 */
export const nativeSendTo: SendTo | null = (() => {
  try {
    const require = createRequire(import.meta.url);
    return (require('../../../../build/Release/udp_send.node') as { sendTo: SendTo }).sendTo;
  } catch {
    return null;
  }
})();
