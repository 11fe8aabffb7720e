import type { NetworkInterfaceInfo } from 'node:os';

/** fe80::/10: the first ten bits are 1111 1110 10. */
export function isLinkLocalIpv6(address: string): boolean {
  const first = Number.parseInt(address.split(':')[0] ?? '', 16);
  return Number.isInteger(first) && (first & 0xffc0) === 0xfe80;
}

/**
 * The addresses other machines could reach this one on: loopback is useless to them and a
 * link-local IPv6 address is only meaningful together with an interface on the same link.
 */
export function pickAddresses(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): { ipv4: string[]; ipv6: string[] } {
  const ipv4 = new Set<string>();
  const ipv6 = new Set<string>();
  for (const infos of Object.values(interfaces)) {
    for (const info of infos ?? []) {
      if (info.internal) continue;
      const [address = ''] = info.address.split('%');
      if (info.family === 'IPv4') ipv4.add(address);
      else if (info.family === 'IPv6' && !isLinkLocalIpv6(address)) ipv6.add(address);
    }
  }
  return { ipv4: [...ipv4], ipv6: [...ipv6] };
}
