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
