/**
 * Tags on sources and activation codes (API.md 5.3, after SMC's TagResources): keys unique per
 * resource, at most 20 per resource, and the key and value rules SMC documents.
 */

/** The resource types tags attach to: SMC's `sourceserver`, and smcd's `accesstoken` for codes. */
export type TagResourceType = 'sourceserver' | 'accesstoken';
export const TAG_RESOURCE_TYPES: readonly TagResourceType[] = ['sourceserver', 'accesstoken'];

/** ResourceType as ListTagResources answers it (SMC's spelling for sources). */
export const LISTED_RESOURCE_TYPE: Record<TagResourceType, string> = {
  sourceserver: 'ALIYUN::SMC::SOURCESERVER',
  accesstoken: 'ALIYUN::SMC::ACCESSTOKEN',
};

export interface Tag {
  key: string;
  value: string;
}

/** A tag filter: `value` undefined matches any value of that key. */
export interface TagFilter {
  key: string;
  value?: string;
}

export const MAX_TAGS_PER_RESOURCE = 20;
export const TAG_KEY_MAX = 64;
export const TAG_VALUE_MAX = 64;

const URL_INSIDE = /https?:\/\//i;

/** Why a tag key is refused, or null. Lengths are counted by the caller, in code points. */
export function tagKeyProblem(key: string): string | null {
  if (/^(acs:|aliyun)/i.test(key)) return 'must not start with acs: or aliyun.';
  if (URL_INSIDE.test(key)) return 'must not contain http:// or https://.';
  return null;
}

export function tagValueProblem(value: string): string | null {
  return URL_INSIDE.test(value) ? 'must not contain http:// or https://.' : null;
}

/** Tags in a stable order (by key), as every response lists them. */
export const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * The tags a source gets from its code at its first import with that code: all of them on a new
 * source; on an existing one only keys it does not have yet (its own values win), up to the limit.
 */
export function inheritedTags(codeTags: readonly Tag[], sourceKeys: readonly string[]): Tag[] {
  const have = new Set(sourceKeys);
  const room = MAX_TAGS_PER_RESOURCE - have.size;
  return codeTags
    .filter((t) => !have.has(t.key))
    .sort(byKey)
    .slice(0, Math.max(0, room));
}

export type ApprovalStatus = 'Pending' | 'Approved';
