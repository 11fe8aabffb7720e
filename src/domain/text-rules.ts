import { parseTime } from './time.ts';

/** A rule on top of a text's length: `check` returns the broken rule's description, or null. */
export interface TextRule {
  describe: string;
  check: (value: string) => string | null;
}

const URL_PREFIX = /^https?:\/\//i;

/**
 * SMC's naming rule: starts with a letter of any script (CJK included), then
 * letters, digits, `.`, `:`, `_`, `-`; never starts with http:// or https://.
 */
export const nameRule: TextRule = {
  describe: 'starts with a letter; letters, digits, ".", ":", "_" and "-"; not starting with http:// or https://',
  check(value) {
    if (URL_PREFIX.test(value)) return 'must not start with http:// or https://.';
    if (!/^\p{L}/u.test(value)) return 'must start with a letter.';
    if (!/^\p{L}[\p{L}\p{M}\p{Nd}.:_-]*$/u.test(value)) return 'may contain only letters, digits, ".", ":", "_" and "-".';
    return null;
  },
};

export const descriptionRule: TextRule = {
  describe: 'not starting with http:// or https://',
  check: (value) => (URL_PREFIX.test(value) ? 'must not start with http:// or https://.' : null),
};

/** A time as SMC writes it (API.md section 1). */
export const timeRule: TextRule = {
  describe: 'UTC time, yyyy-MM-ddTHH:mm:ssZ',
  check: (value) => (parseTime(value) === undefined ? 'must be a UTC time in the form yyyy-MM-ddTHH:mm:ssZ.' : null),
};

/** An http or https URL with a host, and no credentials in it. */
export const webhookUrlRule: TextRule = {
  describe: 'http:// or https:// URL',
  check(value) {
    let u: URL;
    try {
      u = new URL(value);
    } catch {
      return 'must be an http:// or https:// URL.';
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') return 'must be an http:// or https:// URL.';
    if (u.username || u.password) return 'must not carry credentials.';
    return null;
  },
};
