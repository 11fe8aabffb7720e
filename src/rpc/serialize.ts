import { hostname } from 'node:os';

export type Format = 'JSON' | 'XML';

export const CONTENT_TYPES: Record<Format, string> = {
  JSON: 'application/json;charset=utf-8',
  XML: 'application/xml;charset=utf-8',
};

const XML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

// XML 1.0 cannot carry most control characters at all, even escaped.
// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point.
const NOT_IN_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;
const escapeXml = (text: string): string => text.replace(/[&<>"']/g, (c) => XML_ESCAPES[c] ?? c).replace(NOT_IN_XML, '');

function xmlValue(name: string, value: unknown): string {
  if (value === null || value === undefined) return `<${name}/>`;
  if (Array.isArray(value)) return value.map((item) => xmlValue(name, item)).join('');
  if (typeof value === 'object') {
    const inner = Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => xmlValue(k, v))
      .join('');
    return `<${name}>${inner}</${name}>`;
  }
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

/**
 * RPC XML: the root element is `<root>`, each field an element, and an array is
 * its element name repeated: `{AccessTokens:{AccessToken:[a,b]}}` becomes
 * `<AccessTokens><AccessToken>a</AccessToken><AccessToken>b</AccessToken></AccessTokens>`.
 */
export function toXml(root: string, body: Record<string, unknown>): string {
  return `<?xml version="1.0" encoding="UTF-8"?>${xmlValue(root, body)}`;
}

export function serialize(format: Format, root: string, body: Record<string, unknown>): string {
  return format === 'XML' ? toXml(root, body) : JSON.stringify(body);
}

/** Sent as HostId in every error body. */
export const HOST_ID = hostname();
