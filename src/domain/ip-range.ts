import { BlockList, isIP } from 'node:net';

const MAX_ENTRIES = 64;

/**
 * Parses an IpAddressRange: comma-separated IPv4/IPv6 addresses or CIDRs.
 * Returns the normalised text (entries trimmed, joined by commas) or an error rule.
 */
export function normaliseIpRange(text: string): { value: string } | { error: string } {
  const entries = text.split(',').map((e) => e.trim());
  if (entries.length > MAX_ENTRIES) return { error: `at most ${MAX_ENTRIES} entries.` };
  for (const entry of entries) {
    if (!parseEntry(entry)) return { error: `"${entry.slice(0, 64)}" is not an IPv4/IPv6 address or CIDR.` };
  }
  return { value: entries.join(',') };
}

function parseEntry(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address, prefixText, extra] = entry.split('/');
  if (extra !== undefined || !address) return undefined;
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const maxPrefix = version === 4 ? 32 : 128;
  if (prefixText === undefined) return { address, prefix: maxPrefix, family };
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) return undefined;
  return { address, prefix: Number(prefixText), family };
}

/** `::ffff:a.b.c.d` is a.b.c.d, as the TCP peer of a dual-stack socket reports IPv4 clients. */
export function normaliseClientIp(ip: string): string {
  return /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1] ?? ip;
}

const compiled = new Map<string, BlockList>();

/** Whether `clientIp` falls within the range. An empty range allows every address. */
export function ipAllowed(range: string, clientIp: string): boolean {
  if (range === '') return true;
  let list = compiled.get(range);
  if (!list) {
    list = new BlockList();
    for (const entry of range.split(',')) {
      const parsed = parseEntry(entry);
      if (parsed) list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    if (compiled.size >= 1000) compiled.clear();
    compiled.set(range, list);
  }
  const ip = normaliseClientIp(clientIp);
  const version = isIP(ip);
  if (version === 0) return false;
  return list.check(ip, version === 4 ? 'ipv4' : 'ipv6');
}

/** The eight hextets of an IPv6 address (zone dropped, embedded IPv4 converted), or undefined. */
function ipv6Hextets(ip: string): number[] | undefined {
  let text = (ip.split('%')[0] ?? '').toLowerCase();
  const dotted = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number];
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0) return undefined;
  const all = [...head, ...Array<string>(fill).fill('0'), ...tail];
  if (all.length !== 8 || all.some((h) => !/^[0-9a-f]{1,4}$/.test(h))) return undefined;
  return all.map((h) => Number.parseInt(h, 16));
}

/**
 * The unit a client is counted by (throttling, connection caps): an IPv4 address, or the
 * /64 an IPv6 address belongs to, since one IPv6 client commonly holds a whole /64.
 */
export function addressGroup(ip: string): string {
  const plain = normaliseClientIp(ip);
  if (isIP(plain) !== 6) return plain;
  const hextets = ipv6Hextets(plain);
  return hextets
    ? `${hextets
        .slice(0, 4)
        .map((h) => h.toString(16))
        .join(':')}::/64`
    : plain;
}
