import autocannon, { type Client } from 'autocannon';
import type { RequestPool } from './presign.ts';

/**
 * How requests are offered:
 * - max: closed loop, each connection sends its next request when the previous answer arrives.
 * - autocannon-rate: autocannon's `overallRate`. It lets each connection send its share of
 *   a second back to back and then wait for the next second, so the load is a burst at
 *   the start of every second (autocannon/lib/httpClient.js, `reqsMadeThisSecond`).
 * - paced: the same rate spread evenly: each connection sends at fixed intervals, the
 *   connections staggered, so requests arrive one every 1/rate seconds.
 */
export type Offer = { kind: 'max' } | { kind: 'autocannon-rate' | 'paced'; perSecond: number };

export interface LoadSpec {
  url: string;
  connections: number;
  pipelining: number;
  durationS: number;
  /** Pre-signed requests, one pool per connection, each request sent once; or one request every connection repeats. */
  requests: RequestPool[] | Buffer;
  offer: Offer;
}

export interface LoadResult {
  rps: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** Percentiles of every response's latency in ms, at full (sub-millisecond) resolution. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** autocannon's own p99: whole milliseconds, corrected for coordinated omission in rate modes. */
  autocannonP99: number;
  durationS: number;
  /** The pre-signed requests ran out before the duration ended (the rate is then understated). */
  exhausted: boolean;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Spreads one connection's sends evenly: one every `intervalMs`, starting `offsetMs` in. */
function pace(client: Client & { destroyed?: boolean }, intervalMs: number, offsetMs: number): void {
  const send = client._doRequest.bind(client);
  let next = -1;
  client._doRequest = () => {
    const now = performance.now();
    if (next < 0) next = now + offsetMs;
    const wait = next - now;
    next += intervalMs;
    if (wait > 0.2) setTimeout(() => client.destroyed || send(), wait);
    else send();
  };
}

export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const pools = Array.isArray(spec.requests) ? spec.requests : undefined;
  const repeated = Array.isArray(spec.requests) ? undefined : spec.requests;
  const presigned = pools ? pools.reduce((n, p) => n + p.count, 0) : Number.POSITIVE_INFINITY;
  let latencies = new Float64Array(1 << 16);
  let n = 0;
  let nextClient = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        pipelining: spec.pipelining,
        duration: spec.durationS,
        timeout: 30,
        // A connection stops when its pool is used up: a nonce is never sent twice.
        maxConnectionRequests: pools ? Math.min(...pools.map((p) => p.count)) : undefined,
        overallRate: spec.offer.kind === 'autocannon-rate' ? spec.offer.perSecond : undefined,
        setupClient(client) {
          const i = nextClient++;
          // autocannon writes whatever getRequestBuffer() returns (httpClient.js, _doRequest).
          if (repeated) client.getRequestBuffer = () => repeated;
          else {
            const pool = pools![i % pools!.length]!;
            let k = 0;
            client.getRequestBuffer = () => {
              const b = pool.buffer.subarray(pool.offsets[k], pool.offsets[k + 1]);
              k = (k + 1) % pool.count;
              return b;
            };
          }
          if (spec.offer.kind === 'paced') {
            const interval = (1000 * spec.connections) / spec.offer.perSecond;
            pace(client, interval, (i * interval) / spec.connections);
          }
        },
      },
      (err, result) => {
        if (err) return reject(err);
        const sorted = latencies.slice(0, n).sort();
        const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count]));
        const ok = result['2xx'];
        resolve({
          rps: ok / result.duration,
          ok,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCodes,
          p50: percentile(sorted, 0.5),
          p90: percentile(sorted, 0.9),
          p99: percentile(sorted, 0.99),
          max: sorted.at(-1) ?? Number.NaN,
          autocannonP99: result.latency.p99,
          durationS: result.duration,
          exhausted: ok + result.non2xx >= presigned - spec.connections * spec.pipelining,
        });
      },
    );
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
      if (n === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[n++] = ms;
    });
  });
}
