// `npm run bench -- [options]`: load smcd (a child process) and a plain node:http
// baseline with the same autocannon settings, and print req/s, latency, peak RSS and
// the ratios the targets of issue 5 are stated in. See bench/README.md.

import { execSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fmt, intOption, log } from './lib/cli.ts';
import { probeDurableCommit } from './lib/disk-probe.ts';
import { type LoadResult, type Offer, runLoad } from './lib/load.ts';
import { type BenchDatabase, createBenchDatabase, type PgbenchResult, postgresUnavailable, runPgbench } from './lib/postgres.ts';
import { type Call, httpText, presign, type RequestPool, signedCall } from './lib/presign.ts';
import { type ProbeResult, runProbe } from './lib/probe-latency.ts';
import { BENCH_ROOT, type ChildServer, cpuSeconds, RssSampler, startBaseline, startSmcd } from './lib/processes.ts';
import { mainThreadProfile, summariseProfile } from './lib/profile.ts';
import { SCENARIOS, type ScenarioName, SEED, workload } from './lib/scenarios.ts';
import { seedPostgres, seedSqlite } from './lib/seed.ts';

type StoreKind = 'sqlite' | 'postgres';

const HELP = `Usage: npm run bench -- [options]

  --scenario <list>     create,import,heartbeat,list-1k,list-1m,list-filtered,list-wave,pgbench, all (default) or none (with --soak)
  --store <list>        sqlite,postgres or all (default all; postgres is skipped when unreachable)
  --duration <s>        measured seconds per run (default 10)
  --warmup <s>          unmeasured seconds before each measurement (default 2)
  --connections <n>     autocannon connections; also pgbench clients (default 32)
  --pipelining <n>      autocannon pipelining (default 1)
  --pool-size <n>       smcd --db-pool-size for PostgreSQL (default: the connections)
  --no-half-rate        skip the p99-at-half-the-maximum-rate runs of the write scenarios
  --soak                also run CreateAccessToken on SQLite for --soak-duration s, RSS every second
  --soak-duration <s>   (default 60)
  --profile <dir>       run smcd under node --cpu-prof, write profiles to <dir>, print the hot functions
  --log-level <level>   smcd --log-level (default info, as deployed)
  --node-flags=<flags> extra node flags for smcd, space-separated (--node-flags=--max-semi-space-size=4)
  --workers <list>      smcd --workers, comma-separated counts each measured in turn (default 1); the
                        PostgreSQL pool (--pool-size) is shared out among the workers
  --pg-url <url>        PostgreSQL server for fresh databases (default postgres://postgres@127.0.0.1:5432/test)
  --repeat <n>          run everything n times (default 1)
  --json <path>         also write the results as JSON
`;

const { values: opts } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'all' },
    store: { type: 'string', default: 'all' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '32' },
    pipelining: { type: 'string', default: '1' },
    'pool-size': { type: 'string' },
    'no-half-rate': { type: 'boolean', default: false },
    soak: { type: 'boolean', default: false },
    'soak-duration': { type: 'string', default: '60' },
    profile: { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    'node-flags': { type: 'string', default: '' },
    workers: { type: 'string', default: '1' },
    'pg-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' },
    repeat: { type: 'string', default: '1' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const num = intOption;
const durationS = num('duration', opts.duration, 1, 600);
const warmupS = num('warmup', opts.warmup, 0, 60);
const connections = num('connections', opts.connections, 1, 1000);
const pipelining = num('pipelining', opts.pipelining, 1, 64);
const poolSize = opts['pool-size'] ? num('pool-size', opts['pool-size'], 1, 1000) : connections;
const soakS = num('soak-duration', opts['soak-duration'], 5, 3600);
const repeat = num('repeat', opts.repeat, 1, 20);
const logLevel = opts['log-level']!;
const extraNodeFlags = opts['node-flags']!.split(' ').filter(Boolean);
for (const f of extraNodeFlags) if (!f.startsWith('--')) throw new Error(`--node-flags: ${f} is not a node flag`);
const workerCounts = opts.workers!.split(',').map((w) => num('workers', w, 1, 64));
const pgUrl = opts['pg-url']!;
const profileDir = opts.profile ? resolve(opts.profile) : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });

const wanted = opts.scenario === 'all' ? [...SCENARIOS, 'pgbench'] : opts.scenario === 'none' ? [] : opts.scenario!.split(',');
for (const s of wanted) if (![...SCENARIOS, 'pgbench'].includes(s)) throw new Error(`unknown scenario ${s}`);
let stores: StoreKind[] = opts.store === 'all' ? ['sqlite', 'postgres'] : (opts.store!.split(',') as StoreKind[]);
for (const s of stores) if (s !== 'sqlite' && s !== 'postgres') throw new Error(`unknown store ${s}`);

// ---------------------------------------------------------------------------------------

const ms = (n: number) => `${fmt(n, n < 10 ? 2 : 1)} ms`;

function describeLoad(label: string, r: LoadResult): string {
  const codes = Object.entries(r.statusCodes)
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
  const trouble = r.non2xx || r.errors || r.timeouts ? `  !! non-2xx ${r.non2xx} errors ${r.errors} timeouts ${r.timeouts} [${codes}]` : '';
  return `  ${label.padEnd(30)} ${fmt(r.rps).padStart(7)} req/s   p50 ${ms(r.p50).padStart(9)}   p99 ${ms(r.p99).padStart(9)}   max ${ms(r.max).padStart(9)}${r.exhausted ? '   !! pre-signed requests ran out' : ''}${trouble}`;
}

interface HalfRate {
  rate: number;
  autocannon: LoadResult;
  paced: LoadResult;
  /** The baseline server at the same paced rate: the floor that client, kernel and scheduling put under p99. */
  baselinePaced: LoadResult;
  /** One-row durable SQLite commits on this disk, measured just before: the floor of any durable write. */
  disk: { p50: number; p99: number };
}

interface ScenarioResult {
  run: number;
  /** smcd --workers. */
  workers: number;
  scenario: ScenarioName;
  store: StoreKind;
  baseline: LoadResult;
  smcd: LoadResult;
  ratio: number;
  /** smcd's CPU time (user + system, every process and thread) per answered request of the measured run. */
  cpuUsPerRequest: number;
  rss: { peakMb: number; hwmMb: number };
  half?: HalfRate;
  /** list-filtered: a plain ListAccessTokens every 50 ms, alone and while the filtered lists run. */
  plain?: { alone: ProbeResult; loaded: ProbeResult; loopDelayP99Ms?: number };
  profile?: string;
}

interface SoakResult {
  rps: number;
  samplesMb: number[];
  firstMb: number;
  lastMb: number;
  peakMb: number;
  hwmMb: number;
}

const results: ScenarioResult[] = [];
const pgbenchResults: Array<{ run: number; result: PgbenchResult }> = [];
const soaks: SoakResult[] = [];

/** Pre-signs enough requests for `seconds` at `rate`, dealt to the connections. */
async function pool(url: string, make: (i: number) => Call, rate: number, seconds: number): Promise<RequestPool[]> {
  const count = Math.ceil(rate * seconds * 1.25) + connections * pipelining * 20;
  const started = performance.now();
  const lists = presign(count, connections, new URL(url).host, make);
  const took = performance.now() - started;
  if (took > 1000) log(`  (pre-signed ${fmt(count)} requests in ${fmt(took / 1000, 1)} s)`);
  return lists;
}

const load = (url: string, requests: RequestPool[] | Buffer, seconds: number, offer: Offer = { kind: 'max' }) =>
  runLoad({ url, connections, pipelining, durationS: seconds, requests, offer });

async function measureBaseline(call: Call, workDir: string, offer: Offer = { kind: 'max' }): Promise<{ result: LoadResult; rssMb: number }> {
  const baseline = await startBaseline(join(workDir, 'baseline.log'));
  // The same bytes as a smcd request of the scenario, repeated: the baseline ignores them.
  const sample = Buffer.from(httpText(call, new URL(baseline.url).host), 'latin1');
  try {
    if (warmupS) await load(baseline.url, sample, warmupS, offer);
    const rss = new RssSampler(baseline.pid).start();
    const result = await load(baseline.url, sample, durationS, offer);
    return { result, rssMb: rss.stop().hwmMb };
  } finally {
    await baseline.stop();
  }
}

async function openDatabase(store: StoreKind, workDir: string): Promise<{ url: string; db?: BenchDatabase }> {
  if (store === 'sqlite') return { url: `sqlite:${join(workDir, 'smcd.db')}` };
  const db = await createBenchDatabase(pgUrl);
  return { url: db.url, db };
}

async function stopAndProfile(server: ChildServer, label: string): Promise<string | undefined> {
  await server.stop();
  if (!profileDir) return undefined;
  const file = mainThreadProfile(join(profileDir, label));
  if (!file) return undefined;
  log(summariseProfile(file));
  return file;
}

async function runScenario(run: number, scenario: ScenarioName, store: StoreKind, workers: number): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), `smcd-bench-${scenario}-`));
  const { url: database, db } = await openDatabase(store, workDir);
  let server: ChildServer | undefined;
  try {
    log(`\n== ${scenario} on ${store}${workers > 1 ? `, ${workers} workers` : ''} (run ${run}) ==`);
    if (SEED[scenario]) {
      const took =
        store === 'sqlite' ? await seedSqlite(database.slice('sqlite:'.length), SEED[scenario]) : await seedPostgres(database, SEED[scenario]);
      log(`  seeded ${fmt(SEED[scenario])} codes in ${fmt(took / 1000, 1)} s`);
    }
    const label = `${scenario}-${store}-${run}${workers > 1 ? `-w${workers}` : ''}`;
    const nodeFlags = [...extraNodeFlags, ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, label)] : [])];
    // The same database concurrency whatever the worker count: the pool is shared out.
    const dbPool = store === 'postgres' ? Math.max(1, Math.ceil(poolSize / workers)) : undefined;
    server = await startSmcd({ dataDir: workDir, database, logLevel, poolSize: dbPool, nodeFlags, workers });
    const smcdUrl = server.url;
    const w = workload(scenario, () => smcdUrl);

    const baseline = await measureBaseline(w.sample(), workDir);
    log(describeLoad(`baseline node:http (${fmt(baseline.rssMb)} MB)`, baseline.result));

    // smcd cannot outrun the trivial baseline: pre-sign for the baseline's rate.
    const ceiling = Math.min(baseline.result.rps * 1.1, w.maxRate ?? Number.POSITIVE_INFINITY);
    if (warmupS) await load(smcdUrl, await pool(smcdUrl, await w.prepare(Math.ceil(ceiling * warmupS * 1.25)), ceiling, warmupS), warmupS);
    const requests = await pool(smcdUrl, await w.prepare(Math.ceil(ceiling * durationS * 1.25)), ceiling, durationS);
    let plain: ScenarioResult['plain'];
    const plainCalls = (n: number) => Array.from({ length: n }, () => signedCall(BENCH_ROOT, 'GET', 'ListAccessTokens', {}));
    const probeSpec = () => ({ url: smcdUrl, intervalMs: 50, durationS, calls: plainCalls(Math.ceil((durationS * 1000) / 50) + 10) });
    if (scenario === 'list-filtered' || scenario === 'list-wave') {
      const alone = await runProbe(probeSpec());
      log(
        `  plain ListAccessTokens every 50 ms, alone:          p50 ${ms(alone.p50)}   p99 ${ms(alone.p99)}   max ${ms(alone.max)}   failed ${alone.failed}`,
      );
      plain = { alone, loaded: alone };
      await eventLoopDelayP99(smcdUrl); // resets the server's histogram
    }
    const rss = new RssSampler(server.pid).start();
    const probing = plain ? runProbe(probeSpec()) : undefined;
    const cpuBefore = cpuSeconds(server.pid);
    const smcd = await load(smcdUrl, requests, durationS);
    const cpuUs = ((cpuSeconds(server.pid) - cpuBefore) * 1e6) / Math.max(1, smcd.rps * durationS);
    const mem = rss.stop();
    if (plain && probing) {
      plain.loaded = await probing;
      plain.loopDelayP99Ms = await eventLoopDelayP99(smcdUrl);
      log(
        `  plain ListAccessTokens every 50 ms, under the load: p50 ${ms(plain.loaded.p50)}   p99 ${ms(plain.loaded.p99)}   max ${ms(plain.loaded.max)}   failed ${plain.loaded.failed}`,
      );
      log(`  smcd event-loop delay p99 during the load: ${plain.loopDelayP99Ms === undefined ? 'n/a' : ms(plain.loopDelayP99Ms)}`);
    }
    const ratio = smcd.rps / baseline.result.rps;
    log(describeLoad(`smcd ${scenario}`, smcd));
    log(`  ratio to baseline ${fmt(ratio, 2)}   peak RSS ${fmt(mem.hwmMb, 1)} MB (VmHWM)   smcd CPU ${fmt(cpuUs)} µs per request`);

    let half: HalfRate | undefined;
    const halfRss = new RssSampler(server.pid).start();
    if (w.writes && !opts['no-half-rate']) {
      const disk = probeDurableCommit(workDir);
      log(`  disk floor: one-row durable SQLite commit p50 ${ms(disk.p50)}, p99 ${ms(disk.p99)} (${fmt(disk.commits)} commits in 2 s)`);
      const rate = Math.max(1, Math.floor(smcd.rps / 2));
      const a = await load(smcdUrl, await pool(smcdUrl, await w.prepare(rate * durationS * 1.25), rate, durationS), durationS, {
        kind: 'autocannon-rate',
        perSecond: rate,
      });
      log(describeLoad(`at ${fmt(rate)}/s, autocannon rate`, a));
      const p = await load(smcdUrl, await pool(smcdUrl, await w.prepare(rate * durationS * 1.25), rate, durationS), durationS, {
        kind: 'paced',
        perSecond: rate,
      });
      log(describeLoad(`at ${fmt(rate)}/s, paced`, p));
      const b = (await measureBaseline(w.sample(), workDir, { kind: 'paced', perSecond: rate })).result;
      log(describeLoad(`baseline at ${fmt(rate)}/s, paced`, b));
      half = { rate, autocannon: a, paced: p, baselinePaced: b, disk };
    }
    const after = halfRss.stop();
    const profile = await stopAndProfile(server, label);
    server = undefined;
    results.push({
      run,
      workers,
      scenario,
      store,
      baseline: baseline.result,
      smcd,
      ratio,
      cpuUsPerRequest: cpuUs,
      rss: { peakMb: Math.max(mem.peakMb, after.peakMb), hwmMb: after.hwmMb },
      half,
      plain,
      profile,
    });
  } finally {
    await server?.stop();
    await db?.drop().catch((err) => log(`  could not drop ${db.name}: ${(err as Error).message}`));
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** smcd's event-loop delay p99 since the last scrape (prom-client resets its histogram on each), in ms. */
async function eventLoopDelayP99(url: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = /^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

async function runPgbenchScenario(run: number): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'smcd-bench-pgbench-'));
  const db = await createBenchDatabase(pgUrl);
  try {
    log(`\n== pgbench single-row insert, ${connections} clients (run ${run}) ==`);
    const result = await runPgbench(db, connections, durationS, workDir);
    log(`  ${fmt(result.tps)} tps   latency average ${ms(result.latencyAvgMs)}   ${fmt(result.transactions)} transactions`);
    pgbenchResults.push({ run, result });
  } finally {
    await db.drop().catch(() => {});
    rmSync(workDir, { recursive: true, force: true });
  }
}

async function runSoak(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'smcd-bench-soak-'));
  const server = await startSmcd({ dataDir: workDir, logLevel });
  try {
    log(`\n== soak: CreateAccessToken on sqlite for ${soakS} s, RSS every second ==`);
    const w = workload('create', () => server.url);
    const probe = await load(server.url, await pool(server.url, await w.prepare(0), 30_000, 3), 3);
    const requests = await pool(server.url, await w.prepare(0), probe.rps * 1.2, soakS);
    const rss = new RssSampler(server.pid, 1000).start();
    const r = await load(server.url, requests, soakS);
    const m = rss.stop();
    log(describeLoad('smcd create (soak)', r));
    log(`  RSS MB per second: ${rss.samples.map((s) => fmt(s)).join(' ')}`);
    log(`  RSS first ${fmt(m.firstMb, 1)} MB, last ${fmt(m.lastMb, 1)} MB, peak ${fmt(m.peakMb, 1)} MB, VmHWM ${fmt(m.hwmMb, 1)} MB`);
    soaks.push({ rps: r.rps, samplesMb: rss.samples, firstMb: m.firstMb, lastMb: m.lastMb, peakMb: m.peakMb, hwmMb: m.hwmMb });
  } finally {
    await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown';
  let rev = '';
  try {
    rev = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
    if (execSync('git status --porcelain src', { encoding: 'utf8' }).trim()) rev += ' + uncommitted changes in src/';
  } catch {
    /* not a git checkout */
  }
  return `${cpus().length} CPUs (${cpu}), ${fmt(totalmem() / 2 ** 30, 1)} GiB, Node ${process.version}, ${rev}`;
}

function summary(): string {
  const lines = ['', '== summary: ratios against the targets of issue 14 =='];
  const target: Record<string, number> = { create: 0.3, import: 0.2, heartbeat: 0.4 };
  const row = (target: string, value: string, goal: string, ok: boolean | undefined) =>
    lines.push(
      `  ${target.padEnd(56)} ${value.padStart(22)}   ${goal ? `target ${goal.padEnd(8)}` : ''} ${ok === undefined ? '' : ok ? 'met' : 'MISSED'}`.trimEnd(),
    );
  const by = (scenario: ScenarioName, store: StoreKind) => results.filter((r) => r.scenario === scenario && r.store === store);
  const w = (r: ScenarioResult) => (r.workers > 1 ? `, ${r.workers} workers` : '');
  for (const r of results.filter((x) => x.scenario === 'create' || x.scenario === 'import' || x.scenario === 'heartbeat')) {
    row(
      `${r.scenario} ${r.store} req/s ÷ baseline (run ${r.run}${w(r)})`,
      `${fmt(r.smcd.rps)} / ${fmt(r.baseline.rps)} = ${fmt(r.ratio, 2)}`,
      `≥ ${target[r.scenario]}`,
      r.store === 'sqlite' ? r.ratio >= (target[r.scenario] ?? 0) : undefined,
    );
    row(`  smcd CPU per request (all its processes)`, `${fmt(r.cpuUsPerRequest)} µs`, '', undefined);
    if (r.half) {
      row(`${r.scenario} ${r.store} p99 at ${fmt(r.half.rate)}/s, paced (run ${r.run})`, ms(r.half.paced.p99), '< 5 ms', r.half.paced.p99 < 5);
      row(`  (floor: baseline node:http p99 at the same paced rate)`, ms(r.half.baselinePaced.p99), '', undefined);
      row(`  (floor: durable one-row SQLite commit p99, same run)`, ms(r.half.disk.p99), '', undefined);
      row(
        `${r.scenario} ${r.store} p99 at ${fmt(r.half.rate)}/s, autocannon rate (run ${r.run})`,
        ms(r.half.autocannon.p99),
        '< 5 ms',
        r.half.autocannon.p99 < 5,
      );
    }
  }
  for (const { run, result } of pgbenchResults) {
    for (const c of by('create', 'postgres').filter((r) => r.run === run)) {
      const ratio = c.smcd.rps / result.tps;
      row(
        `create postgres ÷ pgbench insert tps (run ${run}${w(c)})`,
        `${fmt(c.smcd.rps)} / ${fmt(result.tps)} = ${fmt(ratio, 2)}`,
        '≥ 0.4',
        ratio >= 0.4,
      );
    }
  }
  for (const store of stores) {
    for (const big of by('list-1m', store)) {
      const small = by('list-1k', store).find((r) => r.run === big.run);
      if (!small) continue;
      const ratio = big.smcd.p99 / small.smcd.p99;
      row(`list p99 1M ÷ 1k, ${store} (run ${big.run})`, `${ms(big.smcd.p99)} / ${ms(small.smcd.p99)} = ${fmt(ratio, 2)}`, '≤ 1.5', ratio <= 1.5);
    }
  }
  for (const r of results.filter((x) => x.plain)) {
    const p = r.plain!;
    row(
      `plain list p99 while ${r.scenario} runs, ${r.store} (run ${r.run})`,
      `${ms(p.loaded.p99)} (alone ${ms(p.alone.p99)})`,
      '< 20 ms',
      p.loaded.p99 < 20,
    );
    if (p.loopDelayP99Ms !== undefined) row(`  event-loop delay p99 meanwhile, ${r.store}`, ms(p.loopDelayP99Ms), '< 10 ms', p.loopDelayP99Ms < 10);
  }
  if (results.length) {
    const peak = Math.max(...results.map((r) => r.rss.hwmMb));
    row('peak RSS of smcd, any scenario (VmHWM)', `${fmt(peak, 1)} MB`, '< 100 MB', peak < 100);
  }
  for (const s of soaks) {
    row(`soak ${soakS} s: RSS first / last / peak`, `${fmt(s.firstMb)} / ${fmt(s.lastMb)} / ${fmt(s.peakMb)} MB`, '< 100 MB', s.peakMb < 100);
  }
  return lines.join('\n');
}

log(`smcd bench: ${machine()}`);
log(
  `autocannon in this process: ${connections} connections, pipelining ${pipelining}, ${durationS} s measured after ${warmupS} s warm-up; smcd log level ${logLevel}${extraNodeFlags.length ? `, node flags ${extraNodeFlags.join(' ')}` : ''}`,
);
if (stores.includes('postgres') || wanted.includes('pgbench')) {
  const why = await postgresUnavailable(pgUrl);
  if (why) {
    log(`PostgreSQL scenarios skipped: ${why}`);
    stores = stores.filter((s) => s !== 'postgres');
    if (wanted.includes('pgbench')) wanted.splice(wanted.indexOf('pgbench'), 1);
  }
}
for (let run = 1; run <= repeat; run++) {
  for (const scenario of wanted) {
    if (scenario === 'pgbench') await runPgbenchScenario(run);
    else
      for (const store of stores)
        for (const workers of workerCounts) {
          if (store === 'sqlite' && workers > 1)
            log(`\n== ${scenario} on sqlite, ${workers} workers: skipped (smcd refuses --workers above 1 with SQLite) ==`);
          else await runScenario(run, scenario as ScenarioName, store, workers);
        }
  }
}
if (opts.soak) await runSoak();
log(summary());
if (opts.json)
  writeFileSync(
    opts.json,
    `${JSON.stringify({ machine: machine(), connections, pipelining, durationS, results, pgbench: pgbenchResults, soaks }, null, 2)}\n`,
  );
