/** Milliseconds since the epoch. Injected everywhere so tests can move time. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

export const DAY_MS = 86_400_000;

/** SMC's time format: UTC, `yyyy-MM-ddTHH:mm:ssZ`. */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

const SMC_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/** SMC's time format back to milliseconds; undefined when it is not one (or not a real date). */
export function parseTime(text: string): number | undefined {
  if (!SMC_TIME.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) || formatTime(ms) !== text ? undefined : ms;
}
