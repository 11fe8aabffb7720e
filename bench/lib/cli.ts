/** What the bench scripts share on the command line: integer options and printed figures. */

/** An integer option within its range, or an error naming the flag. */
export function intOption(name: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** A number with thousands separators and `digits` decimals; n/a when not finite. */
export const fmt = (n: number, digits = 0): string =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';

export const log = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
