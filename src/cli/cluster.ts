import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * `smcd serve --workers N` (N > 1): this process is the primary. It has done the first-start
 * work (migrations, root credentials) before calling here; it forks N workers that each run
 * the ordinary single-process server on the shared port (node:cluster hands them the
 * connections round-robin), replaces a worker that dies, forwards SIGHUP (TLS reload) to
 * every worker, and on SIGTERM/SIGINT lets every worker drain and stop.
 *
 * /metrics is answered for the whole node: the worker that gets the scrape asks the primary,
 * which sums every worker's registry (prom-client's AggregatorRegistry).
 */

/** IPC messages between a worker and the primary about /metrics. */
interface MetricsAsk {
  smcd: 'metrics?';
  id: number;
}
interface MetricsAnswer {
  smcd: 'metrics';
  id: number;
  text?: string;
  error?: string;
}

export interface PrimaryStart {
  workers: number;
  log: Logger;
  /** Called once every worker listens, with the address they share (for the start-up line). */
  started(address: string): void;
  /** Signals caught since the process started, before the workers existed. */
  requested?: string;
  /** Where SIGTERM/SIGINT/SIGHUP will be delivered from now on. */
  onSignal(handler: (signal: NodeJS.Signals) => void): void;
  tls: boolean;
}

/** Runs the primary until it is told to stop; resolves with the exit code. */
export function runPrimary(opts: PrimaryStart): Promise<number> {
  const { workers, log } = opts;
  const aggregator = new AggregatorRegistry();
  const listening = new Set<number>();
  let address = '';
  let stopping = false;
  let announced = false;
  let exitCode = 0;

  /** Forked and not yet exited, with when each was forked. */
  const alive = new Set<Worker>();
  const forkedAt = new Map<Worker, number>();
  const pids = () => [...alive].map((w) => w.process.pid);

  return new Promise<number>((resolve) => {
    const stopAll = (signal: NodeJS.Signals) => {
      for (const w of alive) w.process.kill(signal);
    };
    const finishIfDone = () => {
      if (stopping && alive.size === 0) resolve(exitCode);
    };
    const fork = () => {
      const w = cluster.fork();
      alive.add(w);
      forkedAt.set(w, Date.now());
      w.on('message', (msg: MetricsAsk) => {
        if (msg?.smcd !== 'metrics?') return;
        const reply = (answer: Omit<MetricsAnswer, 'smcd' | 'id'>) => {
          if (w.isConnected()) w.send({ smcd: 'metrics', id: msg.id, ...answer } satisfies MetricsAnswer);
        };
        aggregator.clusterMetrics().then(
          (text) => reply({ text }),
          (err: Error) => reply({ error: err.message }),
        );
      });
    };

    cluster.on('listening', (w, a) => {
      listening.add(w.id);
      const host = a.addressType === 6 || (a.address ?? '').includes(':') ? `[${a.address}]` : a.address;
      address = `${opts.tls ? 'https' : 'http'}://${host}:${a.port}`;
      if (announced) {
        log.info({ worker: w.id, pid: w.process.pid }, `worker ${w.id} (pid ${w.process.pid}) listening`);
        return;
      }
      if (listening.size >= workers) {
        announced = true;
        log.info({ workers: pids() }, `${workers} workers listening (pids ${pids().join(', ')})`);
        opts.started(address);
      }
    });
    cluster.on('exit', (w, code, signal) => {
      alive.delete(w);
      const lived = Date.now() - (forkedAt.get(w) ?? 0);
      forkedAt.delete(w);
      const started = listening.delete(w.id);
      if (stopping) {
        finishIfDone();
        return;
      }
      if (!started) {
        // It never listened: the port is taken, the store refused it, ... Its own log line
        // said why; starting it again would fail the same way.
        log.fatal({ worker: w.id, code, signal }, `smcd cannot start: worker ${w.id} exited (${signal ?? `code ${code}`}) before it listened`);
        exitCode = 1;
        stopping = true;
        stopAll('SIGTERM');
        finishIfDone();
        return;
      }
      if (code === 0 && signal === null) {
        // Stopped on purpose (a SIGTERM sent to it alone): not replaced.
        log.info({ worker: w.id, pid: w.process.pid }, `worker ${w.id} (pid ${w.process.pid}) stopped; ${alive.size} still serving`);
        if (alive.size === 0) resolve(0);
        return;
      }
      log.warn(
        { worker: w.id, pid: w.process.pid, code, signal },
        `worker ${w.id} (pid ${w.process.pid}) died (${signal ?? `code ${code}`}); starting another`,
      );
      // One that keeps dying soon after its start is not restarted in a tight loop.
      setTimeout(
        () => {
          if (!stopping) fork();
        },
        lived < 5_000 ? 1_000 : 0,
      );
    });

    opts.onSignal((signal) => {
      if (signal === 'SIGHUP') {
        log.info('SIGHUP: passed to every worker');
        stopAll('SIGHUP');
        return;
      }
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down: every worker finishes its in-flight requests');
      stopAll('SIGTERM');
      finishIfDone();
    });

    // Told to stop during the first start: nothing to fork.
    if (opts.requested === 'SIGTERM' || opts.requested === 'SIGINT') {
      resolve(0);
      return;
    }
    for (let i = 0; i < workers; i++) fork();
  });
}

/**
 * In a worker: lets the primary read this worker's registry, and returns what /metrics
 * serves instead of the worker's own registry (the sum over every worker).
 */
export function workerMetrics(registry: Registry, timeoutMs = 10_000): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one is what makes prom-client answer the primary's requests in a worker.
  new AggregatorRegistry();
  let seq = 0;
  const waiting = new Map<number, { resolve(text: string): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  process.on('message', (msg: MetricsAnswer) => {
    if (msg?.smcd !== 'metrics') return;
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    clearTimeout(w.timer);
    if (msg.text !== undefined) w.resolve(msg.text);
    else w.reject(new Error(`the primary could not collect the workers' metrics: ${msg.error}`));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = ++seq;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('the primary did not answer for the metrics'));
      }, timeoutMs);
      waiting.set(id, { resolve, reject, timer });
      process.send?.({ smcd: 'metrics?', id } satisfies MetricsAsk);
    });
}
