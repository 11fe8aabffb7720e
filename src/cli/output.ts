/** Rendering of CLI results: aligned tables for people, JSON for scripts. */

export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

/** `CreationTime` → `CREATION TIME`. */
const headerOf = (field: string) => field.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toUpperCase();

/** A column showing one field of a declared response item as it is ('-' when empty). */
export function fieldColumn<T, K extends keyof T & string = keyof T & string>(field: K, header = headerOf(field)): Column<T> {
  return { header, value: (row) => String(row[field] ?? '') || '-' };
}

/** Terminal columns a string takes: East Asian wide and fullwidth characters take two. */
export function displayWidth(s: string): number {
  let width = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || (c >= 0x300 && c < 0x370) || c === 0x200b) continue; // controls, combining marks
    const wide =
      (c >= 0x1100 && c <= 0x115f) ||
      (c >= 0x2e80 && c <= 0xa4cf) ||
      (c >= 0xac00 && c <= 0xd7a3) ||
      (c >= 0xf900 && c <= 0xfaff) ||
      (c >= 0xfe30 && c <= 0xfe4f) ||
      (c >= 0xff00 && c <= 0xff60) ||
      (c >= 0xffe0 && c <= 0xffe6) ||
      (c >= 0x1f300 && c <= 0x1faff) ||
      (c >= 0x20000 && c <= 0x3fffd);
    width += wide ? 2 : 1;
  }
  return width;
}

const pad = (s: string, width: number) => s + ' '.repeat(Math.max(0, width - displayWidth(s)));

/** Control characters from the server (a name is free text) must not drive the terminal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const printable = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');

export function renderTable<T>(columns: Column<T>[], rows: T[]): string {
  const cells = rows.map((r) => columns.map((c) => printable(c.value(r))));
  const widths = columns.map((c, i) => Math.max(displayWidth(c.header), ...cells.map((row) => displayWidth(row[i] ?? ''))));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : pad(v, widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(columns.map((c) => c.header)), ...cells.map(line)].join('\n')}\n`;
}

/** `Label:  value` lines, labels aligned. */
export function renderFields(fields: Array<[string, string]>): string {
  const width = Math.max(...fields.map(([k]) => k.length)) + 1;
  return `${fields.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${printable(v)}`.trimEnd()).join('\n')}\n`;
}

export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** `Page 2 of 3, 45 activation codes in all.` under a table; `noun` is singular. */
export function pageFooter(total: number, pageNumber: number, pageSize: number, noun: string): string {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return `Page ${pageNumber} of ${pages}, ${total} ${noun}${total === 1 ? '' : 's'} in all.\n`;
}

/** Quotes a word for a POSIX shell only when it needs it. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface PageResponse {
  TotalCount: number;
  PageNumber: number;
  PageSize: number;
}

/** Prints one page of a list action: JSON as received, or a table with a paging footer. */
export function renderPage<T>(output: 'table' | 'json', res: PageResponse, items: T[], columns: Column<T>[], noun: string): string {
  if (output === 'json') return renderJson(res);
  const footer = pageFooter(res.TotalCount, res.PageNumber, res.PageSize, noun);
  if (items.length === 0) return res.TotalCount > 0 ? footer : `No ${noun}s.\n`;
  return renderTable(columns, items) + footer;
}

/** `env=prod team=db` for a table cell; '-' when untagged. */
export function tagsSummary(tags: { Tag: Array<{ Key: string; Value: string }> } | undefined): string {
  const list = tags?.Tag ?? [];
  return list.length ? list.map((t) => (t.Value === '' ? t.Key : `${t.Key}=${t.Value}`)).join(' ') : '-';
}
