/** Milliseconds since the epoch. Injected everywhere so tests can move time. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

export const DAY_MS = 86_400_000;

/** SMC's time format: UTC, `yyyy-MM-ddTHH:mm:ssZ`. */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}
