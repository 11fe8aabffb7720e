/**
 * RFC 3986 percent-encoding as Alibaba Cloud's signatures use it: everything but
 * A-Z a-z 0-9 - _ . ~ is escaped, so space is %20, `*` is %2A and `~` stays.
 * encodeURIComponent leaves !'()* alone; those are fixed up here.
 */
export function percentEncode(value: string): string {
  // Most names and values (ids, numbers, plain names) need no escaping at all.
  if (UNRESERVED.test(value)) return value;
  const encoded = encodeURIComponent(value);
  return SUB_DELIMS.test(encoded) ? encoded.replace(SUB_DELIMS_ALL, (c) => SUB_DELIM_ESCAPES[c] ?? c) : encoded;
}

const SUB_DELIMS = /[!'()*]/;
const SUB_DELIMS_ALL = /[!'()*]/g;
const SUB_DELIM_ESCAPES: Record<string, string> = { '!': '%21', "'": '%27', '(': '%28', ')': '%29', '*': '%2A' };

const UNRESERVED = /^[A-Za-z0-9_.~-]*$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes one application/x-www-form-urlencoded component given as a binary
 * (latin1) string, one character per byte as it came off the wire: `+` is a
 * space, %XX are bytes, and the bytes must be valid UTF-8. Returns undefined
 * when the input is malformed, so the caller answers with an SMC error.
 */
export function formDecode(component: string): string | undefined {
  let ascii = true;
  let raw8 = false;
  for (let i = 0; i < component.length; i++) {
    const c = component.charCodeAt(i);
    if (c === 0x25) ascii = false;
    else if (c > 0x7f) {
      ascii = false;
      raw8 = true;
      break;
    }
  }
  if (ascii) return component.includes('+') ? component.replace(/\+/g, ' ') : component;
  // Escapes but no raw bytes above 0x7f (what every client sends): the built-in decoder, which
  // refuses a malformed escape or invalid UTF-8 as the loop below does.
  if (!raw8) {
    try {
      return decodeURIComponent(component.includes('+') ? component.replace(/\+/g, '%20') : component);
    } catch {
      return undefined;
    }
  }
  const bytes = new Uint8Array(component.length);
  let n = 0;
  for (let i = 0; i < component.length; i++) {
    const c = component.charCodeAt(i);
    if (c === 0x25) {
      const hi = hexValue(component.charCodeAt(i + 1));
      const lo = hexValue(component.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      bytes[n++] = hi * 16 + lo;
      i += 2;
    } else if (c > 0xff) {
      return undefined;
    } else {
      bytes[n++] = c === 0x2b ? 0x20 : c;
    }
  }
  try {
    return utf8.decode(bytes.subarray(0, n));
  } catch {
    return undefined;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}
