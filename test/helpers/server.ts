import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ensureRootKey, openData, readRootCredentials } from '../../src/bootstrap.ts';
import type { Clock } from '../../src/domain/time.ts';
import { type ServerOptions, SmcdServer } from '../../src/server.ts';
import type { Creds } from './sign.ts';

export interface TestServer {
  url: string;
  port: number;
  dir: string;
  root: Creds;
  server: SmcdServer;
  /** Every log line the server wrote. */
  logs: string[];
  close(): Promise<void>;
}

export interface TestServerOptions extends Partial<Omit<ServerOptions, 'store' | 'box' | 'log'>> {
  /** Database URL; default a fresh SQLite file in the temp dir. */
  database?: string;
  dir?: string;
  heartbeatRateSeconds?: number;
  env?: NodeJS.ProcessEnv;
  keepDir?: boolean;
  /** PostgreSQL pool size and per-operation timeout, as `smcd serve --db-pool-size/--db-timeout`. */
  storeOptions?: { poolSize?: number; timeoutMs?: number };
  /** The server's log level; default debug (every line). */
  logLevel?: string;
}

export const tempDir = (prefix = 'smcd-test-') => mkdtempSync(join(tmpdir(), prefix));

/** A mutable clock for tests that move time. */
export function testClock(start = Date.now()): Clock & { advance(ms: number): void; set(ms: number): void } {
  let now = start;
  const clock = (() => now) as Clock & { advance(ms: number): void; set(ms: number): void };
  clock.advance = (ms) => {
    now += ms;
  };
  clock.set = (ms) => {
    now = ms;
  };
  return clock;
}

/** A real smcd server on 127.0.0.1 and a free port, in this process. */
export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dir = opts.dir ?? tempDir();
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const log = pino({ level: opts.logLevel ?? 'debug' }, sink);
  const env = opts.env ?? {};
  const clock = opts.clock ?? (() => Date.now());
  const data = await openData(dir, opts.database ?? `sqlite:${join(dir, 'smcd.db')}`, env, opts.storeOptions);
  await ensureRootKey(data, dir, clock(), env);
  const root = env.SMCD_ROOT_ACCESS_KEY_ID
    ? { id: env.SMCD_ROOT_ACCESS_KEY_ID, secret: env.SMCD_ROOT_ACCESS_KEY_SECRET! }
    : (() => {
        const c = readRootCredentials(dir)!;
        return { id: c.AccessKeyId, secret: c.AccessKeySecret };
      })();
  const server = new SmcdServer({
    ...opts,
    store: data.store,
    box: data.box,
    log,
    clock,
    settings: { heartbeatRateSeconds: opts.heartbeatRateSeconds ?? 30 },
  });
  const url = await server.listen(0, '127.0.0.1');
  return {
    url,
    port: Number(new URL(url).port),
    dir,
    root,
    server,
    logs,
    async close() {
      await server.close();
      if (!opts.keepDir && !opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
