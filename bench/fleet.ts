// `npm run bench:fleet -- [options]`: a simulated fleet on one smcd node (issue 14). Every
// source sends one heartbeat per interval, spread evenly, each on a new connection (as the
// shell agent's curl does), signed with its own source key. Prints the CPU smcd spends per
// heartbeat and its share of one core, next to a plain node:http server offered the same
// requests in the same run. See bench/README.md.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { SecretBox } from '../src/crypto/secret-box.ts';
import { openStore } from '../src/store/open-store.ts';
import { fmt, intOption, log } from './lib/cli.ts';
import { type Creds, signedForm } from './lib/presign.ts';
import { BENCH_MASTER_KEY, BENCH_ROOT, type ChildServer, RssSampler, startBaseline, startSmcd } from './lib/processes.ts';
import { mainThreadProfile, summariseProfile } from './lib/profile.ts';

const HELP = `Usage: npm run bench:fleet -- [options]

  --sources <n>       sources in the fleet (default 100000)
  --interval <s>      seconds between one source's heartbeats, also smcd --heartbeat-rate (default 30)
  --duration <s>      measured seconds (default 60)
  --warmup <s>        unmeasured seconds first (default: one interval + 2, so every source has beaten once)
  --keep-alive        reuse connections (default: a new connection per heartbeat, as curl in the agent)
  --log-level <l>     smcd's log level (default info, as deployed)
  --profile <dir>     run smcd under node --cpu-prof, print the hot functions
`;

const { values: opts } = parseArgs({
  options: {
    sources: { type: 'string', default: '100000' },
    interval: { type: 'string', default: '30' },
    duration: { type: 'string', default: '60' },
    warmup: { type: 'string' },
    'keep-alive': { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'info' },
    profile: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const num = intOption;
const sources = num('sources', opts.sources, 1, 10_000_000);
const intervalS = num('interval', opts.interval, 1, 3600);
const durationS = num('duration', opts.duration, 1, 3600);
const warmupS = opts.warmup === undefined ? intervalS + 2 : num('warmup', opts.warmup, 0, 600);
const rate = sources / intervalS;

interface FleetSource {
  id: string;
  key: Creds;
}

/**
 * Puts the fleet straight into a fresh data dir's database, as imports would leave it: one
 * code, `count` sources each with its own key sealed under the bench master key (the server
 * opens them to check signatures). Returns the sources with their plain keys, for signing.
 */
async function seedFleet(dataDir: string, count: number): Promise<FleetSource[]> {
  const path = join(dataDir, 'smcd.db');
  await (await openStore(`sqlite:${path}`)).close();
  const box = new SecretBox(Buffer.from(BENCH_MASTER_KEY, 'hex'));
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  const now = Date.now();
  const run = randomBytes(3).toString('hex');
  const tokenId = `at-fleet${run}000000000`;
  db.prepare(
    `INSERT INTO access_tokens (id, code_sealed, name, description, count, registered_count, ttl_days, created_at, expires_at, created_by)
     VALUES (?, ?, 'fleet', '', 1000, 1000, 90, ?, ?, ?)`,
  ).run(tokenId, box.seal('x'.repeat(32), tokenId), now, now + 90 * 86_400_000, BENCH_ROOT.id);
  const insert = db.prepare(
    `INSERT INTO sources (id, key_id, key_sealed, access_token_id, machine_id, name, description, hostname, platform,
       architecture, kernel_level, agent_version, system_disk_size, data_disks, system_info, created_at, first_import_at,
       last_import_at, first_client_ip, last_client_ip, last_heartbeat_at)
     VALUES (?, ?, ?, ?, ?, ?, '', ?, 'Debian GNU/Linux 12', 'x86_64', 6, 'smcd-agent/0.1.0', 40, '[]', '{}', ?, ?, ?,
       '127.0.0.1', '127.0.0.1', ?)`,
  );
  const fleet: FleetSource[] = [];
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const n = String(i).padStart(8, '0');
      const id = `s-fleet${run}${n}`.padEnd(22, '0');
      const keyId = `sk-fleet${run}${n}`.padEnd(23, '0');
      const secret = randomBytes(24).toString('base64url');
      insert.run(id, keyId, box.seal(secret, keyId), tokenId, `m-${run}-${n}`, `web-${n}`, `web-${n}`, now, now, now, now);
      fleet.push({ id, key: { id: keyId, secret } });
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return fleet;
}

/** utime + stime of a process, in seconds, from /proc/<pid>/stat (clock ticks of 1/100 s on Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface FleetRun {
  offered: number;
  answered: number;
  failed: number;
  statuses: Record<string, number>;
  p50: number;
  p99: number;
  max: number;
  cpuS: number;
  wallS: number;
  rssPeakMb: number;
}

/**
 * Offers heartbeats at `rate` per second, evenly paced (a 5 ms tick sends what is due), source
 * after source, for warm-up + duration seconds. Only the measured window counts.
 */
async function runFleet(server: ChildServer, fleet: FleetSource[]): Promise<FleetRun> {
  const url = new URL(server.url);
  const agent = opts['keep-alive'] ? new Agent({ keepAlive: true, maxSockets: 64 }) : undefined;
  let next = 0;
  let measuring = false;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let offered = 0;
  let answered = 0;
  let failed = 0;
  let inFlight = 0;

  const beat = (source: FleetSource, index: number) => {
    const body = signedForm(source.key, 'POST', 'ReportSourceServerHeartbeat', { SourceId: source.id });
    const counted = measuring;
    const started = performance.now();
    if (counted) offered++;
    inFlight++;
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: '/',
        agent: agent ?? false,
        // Each source from its own address, as a fleet is (127.0.0.0/8 is all loopback): the
        // per-address connection cap and throttles see a fleet, not one client.
        localAddress: agent ? undefined : `127.1.${(index >> 8) & 255}.${index & 255 || 1}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          inFlight--;
          if (!counted) return;
          latencies.push(performance.now() - started);
          statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
          if (res.statusCode === 200) answered++;
          else failed++;
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      inFlight--;
      if (counted) failed++;
    });
    req.end(body);
  };

  const sampler = new RssSampler(server.pid, 1000);
  const t0 = performance.now();
  let cpu0 = 0;
  let measureStart = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = (performance.now() - t0) / 1000;
      if (!measuring && elapsed >= warmupS) {
        measuring = true;
        cpu0 = cpuSeconds(server.pid);
        measureStart = performance.now();
        sampler.start();
      }
      if (elapsed >= warmupS + durationS) {
        clearInterval(tick);
        resolve();
        return;
      }
      const due = Math.floor(elapsed * rate);
      while (next < due) {
        const index = next++ % fleet.length;
        beat(fleet[index]!, index);
      }
    }, 5);
  });
  const cpuS = cpuSeconds(server.pid) - cpu0;
  const wallS = (performance.now() - measureStart) / 1000;
  const rss = sampler.stop();
  // Let the last answers arrive (they belong to the window), up to 10 s.
  for (let i = 0; i < 200 && inFlight > 0; i++) await new Promise((r) => setTimeout(r, 50));
  agent?.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
  return {
    offered,
    answered,
    failed,
    statuses,
    p50: q(0.5),
    p99: q(0.99),
    max: latencies.at(-1) ?? Number.NaN,
    cpuS,
    wallS,
    rssPeakMb: Math.max(rss.peakMb, rss.hwmMb),
  };
}

function report(label: string, r: FleetRun): void {
  const codes = Object.entries(r.statuses)
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
  log(
    `  ${label.padEnd(9)} offered ${fmt(r.offered / r.wallS)}/s answered ${fmt(r.answered / r.wallS)}/s  failed ${r.failed} [${codes}]  ` +
      `p50 ${fmt(r.p50, 2)} ms  p99 ${fmt(r.p99, 2)} ms  max ${fmt(r.max, 1)} ms`,
  );
  log(
    `  ${''.padEnd(9)} CPU ${fmt((100 * r.cpuS) / r.wallS, 1)} % of one core   ${fmt((1e6 * r.cpuS) / Math.max(1, r.answered), 1)} µs per answered request   peak RSS ${fmt(r.rssPeakMb, 1)} MB`,
  );
}

async function eventLoopDelayP99Ms(serverUrl: string): Promise<number | undefined> {
  const text = await (await fetch(`${serverUrl}/metrics`)).text();
  const m = /^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text);
  return m ? Number(m[1]) * 1000 : undefined;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'smcd-bench-fleet-'));
  let smcd: ChildServer | undefined;
  let baseline: ChildServer | undefined;
  try {
    log(
      `fleet: ${fmt(sources)} sources, one heartbeat each every ${intervalS} s = ${fmt(rate)}/s, ` +
        `${opts['keep-alive'] ? 'kept-alive connections' : 'a new connection per heartbeat'}; ${warmupS} s warm-up, ${durationS} s measured`,
    );
    const seedStarted = performance.now();
    const fleet = await seedFleet(dataDir, sources);
    log(`  seeded ${fmt(fleet.length)} sources with sealed keys in ${fmt((performance.now() - seedStarted) / 1000, 1)} s`);

    baseline = await startBaseline(join(dataDir, 'baseline.log'));
    const base = await runFleet(baseline, fleet);
    await baseline.stop();
    baseline = undefined;

    const profileDir = opts.profile ? resolve(opts.profile) : undefined;
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    smcd = await startSmcd({
      dataDir,
      logLevel: opts['log-level']!,
      extraArgs: ['--heartbeat-rate', String(intervalS)],
      nodeFlags: profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [],
    });
    const fleetStart = Date.now();
    const run = await runFleet(smcd, fleet);
    const loopP99 = await eventLoopDelayP99Ms(smcd.url);
    const unavailable = await (
      await fetch(`${smcd.url}/?${signedForm(BENCH_ROOT, 'GET', 'DescribeSourceServers', { State: 'Unavailable', PageSize: '1' })}`)
    ).json();
    await smcd.stop();
    smcd = undefined;
    const profile = profileDir && mainThreadProfile(profileDir);
    if (profile) log(summariseProfile(profile));
    // Every source that beat in the window has its beat stored (the buffer flushes on shutdown).
    const db = new Database(join(dataDir, 'smcd.db'), { readonly: true });
    const stored = (db.prepare('SELECT COUNT(*) AS n FROM sources WHERE last_heartbeat_at >= ?').get(fleetStart) as { n: number }).n;
    db.close();

    log('');
    report('baseline', base);
    report('smcd', run);
    const perBeat = (1e6 * run.cpuS) / Math.max(1, run.answered);
    const perBase = (1e6 * base.cpuS) / Math.max(1, base.answered);
    log(`  smcd CPU per heartbeat ÷ baseline CPU per request: ${fmt(perBeat / perBase, 2)}`);
    log(`  smcd event-loop delay p99 (last scrape interval): ${loopP99 === undefined ? 'n/a' : `${fmt(loopP99, 1)} ms`}`);
    log(`  sources Unavailable at the end: ${unavailable.TotalCount}; sources with a stored heartbeat from this run: ${fmt(stored)}`);
    const sustained = run.failed === 0 && run.answered >= 0.99 * run.offered;
    log(
      `  target (issue 14): sustained with < 50 % of one core: ${sustained ? 'sustained' : 'NOT sustained'}, ` +
        `${fmt((100 * run.cpuS) / run.wallS, 1)} % -> ${sustained && run.cpuS / run.wallS < 0.5 ? 'met' : 'missed'}`,
    );
  } finally {
    await smcd?.stop();
    await baseline?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
