import { BlockList, isIP } from 'node:net';
import { normaliseClientIp } from '../domain/ip-range.ts';

/** Parses `--trust-proxy` (comma-separated addresses or CIDRs) into a BlockList. */
export function parseTrustedProxies(list: string): BlockList | undefined {
  const entries = list
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) return undefined;
  const trusted = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const version = isIP(address);
    if (version === 0) throw new Error(`--trust-proxy: "${entry}" is not an address or CIDR`);
    const family = version === 4 ? 'ipv4' : 'ipv6';
    trusted.addSubnet(address, prefix === undefined ? (version === 4 ? 32 : 128) : Number(prefix), family);
  }
  return trusted;
}

const isTrusted = (trusted: BlockList, ip: string): boolean => {
  const version = isIP(ip);
  return version !== 0 && trusted.check(ip, version === 4 ? 'ipv4' : 'ipv6');
};

/**
 * The client's address: the TCP peer, unless the peer is a listed proxy; then the
 * right-most X-Forwarded-For entry that is not itself a listed proxy.
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted?: BlockList): string {
  let ip = normaliseClientIp(peer ?? '');
  if (!trusted || forwardedFor === undefined || !isTrusted(trusted, ip)) return ip;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',').map((h) => normaliseClientIp(h.trim()));
  for (const hop of hops.reverse()) {
    if (isIP(hop) === 0) break;
    ip = hop;
    if (!isTrusted(trusted, ip)) break;
  }
  return ip;
}
