import { Agent, request } from 'node:http';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type Call, httpText } from './presign.ts';

/**
 * A light client that sends one request every `intervalMs` on its own keep-alive
 * connection and records each latency: how long a plain call waits while the main
 * load runs. It runs in a worker thread, so that the load client in the main thread
 * (autocannon, busy at full rate) does not delay its timers or its reads.
 */
export interface ProbeSpec {
  url: string;
  intervalMs: number;
  durationS: number;
  /** Pre-signed forms, one per request (each nonce is used once). */
  calls: Call[];
}

export interface ProbeResult {
  sent: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
}

export function runProbe(spec: ProbeSpec): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    // The worker loads this file through tsx, as the bench itself runs.
    const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const worker = new Worker(boot, { eval: true, workerData: spec });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

async function probeLoop(spec: ProbeSpec): Promise<ProbeResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const target = new URL(spec.url);
  const latencies: number[] = [];
  let failed = 0;
  const end = performance.now() + spec.durationS * 1000;
  let i = 0;
  while (performance.now() < end && i < spec.calls.length) {
    const call = spec.calls[i++]!;
    const started = performance.now();
    const ok = await new Promise<boolean>((done) => {
      const req = request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          method: call.method,
          path: call.method === 'GET' ? `/?${call.form}` : '/',
          headers: call.method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {},
        },
        (res) => {
          res.resume();
          res.on('end', () => done(res.statusCode === 200));
        },
      );
      req.on('error', () => done(false));
      req.end(call.method === 'POST' ? call.form : undefined);
    });
    const took = performance.now() - started;
    if (ok) latencies.push(took);
    else failed++;
    const wait = spec.intervalMs - took;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return { sent: i, failed, p50: at(0.5), p99: at(0.99), max: latencies.at(-1) ?? Number.NaN };
}

if (!isMainThread && workerData?.calls) {
  parentPort!.postMessage(await probeLoop(workerData as ProbeSpec));
}

// httpText is re-exported so callers build the same requests the load sends.
export { httpText };
