import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const SMCD_BIN = fileURLToPath(new URL('../../bin/smcd.js', import.meta.url));
const BASELINE = fileURLToPath(new URL('./baseline-server.ts', import.meta.url));

/** Fixed credentials for every bench server: the bench signs with them, nothing else does. */
export const BENCH_ROOT = { id: 'LTAIbench000000000000000', secret: 'benchsecret0000000000000000000' };
export const BENCH_MASTER_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

export interface ChildServer {
  url: string;
  pid: number;
  child: ChildProcess;
  logPath: string;
  /** SIGTERM and wait: a clean exit is what writes a --cpu-prof profile. */
  stop(): Promise<number | null>;
}

/** The parent's environment without SMCD_* settings, so only what the bench sets applies. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SMCD_')) env[k] = v;
  return { ...env, ...extra };
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

/**
 * Starts a server process with stdout/stderr going to a file (as a service manager
 * would), and waits until `readyUrl` answers 200.
 */
function startChild(
  args: string[],
  env: NodeJS.ProcessEnv,
  logPath: string,
  url: string,
  readyUrl: string,
  timeoutMs = 30_000,
): Promise<ChildServer> {
  const fd = openSync(logPath, 'w');
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = async () => {
      if (await answers(readyUrl)) {
        resolve({
          url,
          pid: child.pid!,
          child,
          logPath,
          async stop() {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            return exited;
          },
        });
      } else if (child.exitCode !== null || Date.now() - started > timeoutMs) {
        child.kill('SIGKILL');
        reject(new Error(`${args.join(' ')} did not start:\n${readFileSync(logPath, 'utf8').slice(-2000)}`));
      } else {
        setTimeout(poll, 50);
      }
    };
    setTimeout(poll, 50);
  });
}

export interface SmcdOptions {
  dataDir: string;
  /** sqlite:<path> or postgres://...; default the data dir's SQLite file. */
  database?: string;
  logLevel: string;
  poolSize?: number;
  /** Extra node flags for the smcd process, e.g. --cpu-prof. */
  nodeFlags?: string[];
  /** Extra `smcd serve` arguments, e.g. --heartbeat-rate 30. */
  extraArgs?: string[];
  /** smcd --workers (default 1). */
  workers?: number;
}

export async function startSmcd(o: SmcdOptions): Promise<ChildServer> {
  const port = await freePort();
  const args = [...(o.nodeFlags ?? []), SMCD_BIN, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', o.dataDir];
  if (o.database) args.push('--database', o.database);
  if (o.poolSize) args.push('--db-pool-size', String(o.poolSize));
  if (o.workers && o.workers > 1) args.push('--workers', String(o.workers));
  args.push(...(o.extraArgs ?? []));
  const env = cleanEnv({
    SMCD_LOG_LEVEL: o.logLevel,
    SMCD_MASTER_KEY: BENCH_MASTER_KEY,
    SMCD_ROOT_ACCESS_KEY_ID: BENCH_ROOT.id,
    SMCD_ROOT_ACCESS_KEY_SECRET: BENCH_ROOT.secret,
  });
  const url = `http://127.0.0.1:${port}`;
  return startChild(args, env, `${o.dataDir}/smcd.log`, url, `${url}/readyz`);
}

/** The plain node:http server every scenario is compared with, loaded the same way (tsx). */
export async function startBaseline(logPath: string): Promise<ChildServer> {
  const url = `http://127.0.0.1:${await freePort()}`;
  return startChild(['--import', 'tsx', BASELINE, new URL(url).port], cleanEnv({}), logPath, url, url);
}

/** The process and its children (smcd --workers: the primary and its workers). */
function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    /* no children file: the process alone */
  }
  return [pid, ...children];
}

/**
 * CPU seconds (user + system) used so far by a process and its children (smcd --workers:
 * the primary and every worker; threads included), from /proc/<pid>/stat.
 */
export function cpuSeconds(pid: number): number {
  const ticks = 100; // USER_HZ: 100 on Linux
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // The fields after the command name (which may hold spaces), from the closing parenthesis.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / ticks; // utime, stime
    } catch {
      /* exited */
    }
  }
  return total;
}

/**
 * Current and peak resident set size of a process and its children, in MiB, from
 * /proc/<pid>/status (for smcd --workers the sum over the primary and every worker; their
 * peaks, summed, may not have been at the same moment).
 */
export function readMemory(pid: number): { rssMb: number; hwmMb: number } {
  let rss = 0;
  let hwm = 0;
  for (const p of processTree(pid)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${p}/status`, 'utf8');
    } catch (err) {
      if (p === pid) throw err;
      continue; // a worker that just exited
    }
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    rss += kb('VmRSS');
    hwm += kb('VmHWM');
  }
  return { rssMb: rss / 1024, hwmMb: hwm / 1024 };
}

/** Samples RSS at an interval; peak is the larger of the highest sample and VmHWM. */
export class RssSampler {
  readonly samples: number[] = [];
  #timer?: NodeJS.Timeout;
  #hwm = 0;

  constructor(
    readonly pid: number,
    readonly intervalMs = 250,
  ) {}

  start(): this {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), this.intervalMs);
    return this;
  }

  #sample(): void {
    try {
      const m = readMemory(this.pid);
      this.samples.push(m.rssMb);
      this.#hwm = Math.max(this.#hwm, m.hwmMb);
    } catch {
      /* the process has exited */
    }
  }

  stop(): { firstMb: number; lastMb: number; peakMb: number; hwmMb: number } {
    this.#sample();
    clearInterval(this.#timer);
    return {
      firstMb: this.samples[0] ?? Number.NaN,
      lastMb: this.samples.at(-1) ?? Number.NaN,
      peakMb: Math.max(...this.samples),
      hwmMb: this.#hwm,
    };
  }
}
