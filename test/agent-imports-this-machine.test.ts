import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { importParams, systemInfoOf } from '../src/agent/import.ts';
import { readMachineId } from '../src/agent/machine-id.ts';
import type { MachineInfo } from '../src/agent/probe.ts';
import { DAY_MS } from '../src/domain/time.ts';
import { SMCD_BIN } from './helpers/process-server.ts';
import { startTestServer, type TestServer, tempDir, testClock } from './helpers/server.ts';
import { callV1, timestampNow } from './helpers/sign.ts';

const PACKAGE_VERSION = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version as string;
const SUCCESS = /^Import Source Server \[(s-[a-z0-9]{20})\] Successfully!$/m;

/** Every secret the agent was given or got back, and everything it printed: checked against each other at the end. */
const secrets = new Set<string>();
const transcripts: string[] = [];
const dirs: string[] = [];

interface Code {
  id: string;
  code: string;
}

interface AgentRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The agent's environment: nothing inherited that could point it elsewhere or at the user's home. */
function agentEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['SMCD_ENDPOINT', 'SMCD_TOKEN_ID', 'SMCD_TOKEN_CODE', 'SMCD_AGENT_STATE_DIR', 'SMCD_AGENT_MACHINE_ID']) delete env[k];
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** `smcd agent ...` as a real process. Asynchronous: the server under test lives in this process. */
function startAgent(args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn(process.execPath, [SMCD_BIN, 'agent', ...args], { env: agentEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const run = { stdout: '', stderr: '' };
  child.stdout!.on('data', (c) => (run.stdout += c));
  child.stderr!.on('data', (c) => (run.stderr += c));
  const exited = new Promise<AgentRun>((resolve) =>
    child.once('close', (code) => {
      transcripts.push(run.stdout, run.stderr);
      resolve({ code, ...run });
    }),
  );
  return { child, run, exited };
}

/** Its exit, or a failure (and SIGKILL) if it has not exited within `ms`. */
async function exitOf(agent: ReturnType<typeof startAgent>, ms = 30_000): Promise<AgentRun> {
  const timer = setTimeout(() => agent.child.kill('SIGKILL'), ms);
  try {
    const run = await agent.exited;
    assert.notEqual(run.code, null, `the agent did not exit within ${ms} ms:\n${run.stdout}\n${run.stderr}`);
    return run;
  } finally {
    clearTimeout(timer);
  }
}

async function runAgent(args: string[], env: Record<string, string | undefined> = {}): Promise<AgentRun> {
  return exitOf(startAgent(args, env), 60_000);
}

/** Polls until `check` returns a value, for at most `ms`; the assertion is the caller's. */
async function waitFor<T>(what: string, ms: number, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`gave up waiting for ${what} after ${ms} ms`);
    await sleep(200);
  }
}

async function createCode(s: TestServer, params: Record<string, string> = {}, opts = {}): Promise<Code> {
  const res = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'agent-test', ...params }, opts);
  assert.equal(res.status, 200, res.text);
  secrets.add(res.body.AccessTokenCode);
  return { id: res.body.AccessTokenId, code: res.body.AccessTokenCode };
}

async function sources(s: TestServer, filter: Record<string, string>) {
  const res = await callV1(s.url, s.root, 'DescribeSourceServers', filter);
  assert.equal(res.status, 200, res.text);
  return res.body as { TotalCount: number; SourceServers: { SourceServer: any[] } };
}

async function sourceById(s: TestServer, sourceId: string) {
  const res = await sources(s, { 'SourceId.1': sourceId });
  return res.SourceServers.SourceServer[0];
}

async function registeredCount(s: TestServer, tokenId: string): Promise<string> {
  const res = await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': tokenId });
  assert.equal(res.status, 200, res.text);
  return res.body.AccessTokens.AccessToken[0].RegisteredCount;
}

async function readState(stateDir: string) {
  const state = JSON.parse(await readFile(join(stateDir, 'source.json'), 'utf8'));
  secrets.add(state.sourceKeySecret);
  return state as { endpoint: string; sourceId: string; sourceKeyId: string; sourceKeySecret: string; heartbeatRate: number };
}

function stateDir(): string {
  const dir = tempDir('smcd-agent-');
  dirs.push(dir);
  return join(dir, 'state');
}

const codeEnv = (c: Code) => ({ SMCD_TOKEN_ID: c.id, SMCD_TOKEN_CODE: c.code });

let machines = 0;
/**
 * A machine id of its own for a test: every agent here runs on the same host, and one
 * MachineId has one source per server whichever code imported it (API.md, ImportSourceServer).
 */
const otherMachine = () => ({ SMCD_AGENT_MACHINE_ID: `test-machine-${process.pid}-${++machines}` });

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Successful heartbeats the server logged for one source key. */
function heartbeatsOf(s: TestServer, sourceKeyId: string): number {
  return s.logs.filter((line) => {
    const entry = JSON.parse(line);
    return entry.action === 'ReportSourceServerHeartbeat' && entry.status === 200 && entry.keyId === sourceKeyId;
  }).length;
}

function assertClean(run: AgentRun, code: Code) {
  assert.ok(!run.stdout.includes(code.code) && !run.stderr.includes(code.code), 'the agent printed the activation code');
}

after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('smcd agent import, run as a process against a real server', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ heartbeatRateSeconds: 1 });
  });
  after(() => s.close());

  it('imports this machine: hostname, architecture, cores, one slot, a 0600 key file, no secret printed', async () => {
    const code = await createCode(s, { Count: '5' });
    const dir = stateDir();
    const run = await runAgent(['import', '--endpoint', s.url, '--state-dir', dir], codeEnv(code));
    assert.equal(run.code, 0, run.stderr);
    const sourceId = SUCCESS.exec(run.stdout)?.[1];
    assert.ok(sourceId, run.stdout);
    assert.equal(run.stdout, `Import Source Server [${sourceId}] Successfully!\n`);

    const listed = await sources(s, { AccessTokenId: code.id });
    assert.equal(listed.TotalCount, 1);
    const src = listed.SourceServers.SourceServer[0];
    assert.equal(src.SourceId, sourceId);
    assert.equal(src.Hostname, os.hostname());
    assert.equal(src.Name, os.hostname(), 'Name defaults to the hostname when --name is not given');
    assert.equal(src.MachineId, await readMachineId(dir), "this machine's own id");
    if (os.arch() === 'x64') assert.equal(src.Architecture, 'x86_64');
    if (os.arch() === 'arm64') assert.equal(src.Architecture, 'arm64');
    assert.equal(src.KernelLevel, Number.parseInt(os.release(), 10));
    assert.equal(src.AgentVersion, PACKAGE_VERSION);
    assert.equal(src.State, 'Available');
    assert.ok(src.Platform.length > 0);
    const info = JSON.parse(src.SystemInfo);
    assert.equal(info.cores, os.availableParallelism());
    assert.equal(info.hostname, os.hostname());
    assert.equal(info.memory, os.totalmem());
    assert.equal(info.kernel, os.release());
    assert.ok(Array.isArray(info.ipv4) && Array.isArray(info.ipv6));
    assert.ok(Buffer.byteLength(src.SystemInfo) <= 1024);
    assert.equal(await registeredCount(s, code.id), '1');

    const state = await readState(dir);
    assert.equal(state.sourceId, sourceId);
    assert.equal(state.endpoint, s.url);
    assert.equal(state.heartbeatRate, 1);
    assert.match(state.sourceKeyId, /^sk-/);
    assert.equal((await stat(join(dir, 'source.json'))).mode & 0o777, 0o600);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assertClean(run, code);
    assert.ok(!run.stdout.includes(state.sourceKeySecret) && !run.stderr.includes(state.sourceKeySecret), 'the agent printed the source secret');

    // Again, with a name: the same source, a new key secret, and no second slot.
    const again = await runAgent(
      ['import', '--endpoint', s.url, '--state-dir', dir, '--name', 'web-01', '--description', 'front end'],
      codeEnv(code),
    );
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, `Import Source Server [${sourceId}] Successfully!\n`);
    const reState = await readState(dir);
    assert.equal(reState.sourceId, sourceId);
    assert.equal(reState.sourceKeyId, state.sourceKeyId);
    assert.notEqual(reState.sourceKeySecret, state.sourceKeySecret);
    assert.equal(await registeredCount(s, code.id), '1');
    const renamed = await sources(s, { AccessTokenId: code.id });
    assert.equal(renamed.TotalCount, 1);
    assert.equal(renamed.SourceServers.SourceServer[0].Name, 'web-01');
    assert.equal(renamed.SourceServers.SourceServer[0].Description, 'front end');
    assertClean(again, code);
  });

  it('a clone without the key (same MachineId, no state file): exit 1, MachineIdInUse, told to use its own id; then it can', async () => {
    const code = await createCode(s, { Count: '5' });
    const machine = otherMachine();
    const original = stateDir();
    assert.equal((await runAgent(['import', '--endpoint', s.url, '--state-dir', original], { ...codeEnv(code), ...machine })).code, 0);
    const { sourceId } = await readState(original);
    const clone = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], { ...codeEnv(code), ...machine });
    assert.equal(clone.code, 1);
    assert.ok(clone.stderr.includes(sourceId), clone.stderr);
    assert.match(
      clone.stderr,
      /another source already owns this machine's MachineId.*own id \(--machine-id or SMCD_AGENT_MACHINE_ID\).*SourceServer\.MachineIdInUse/,
    );
    assertClean(clone, code);
    assert.equal(await registeredCount(s, code.id), '1');
    // The original still re-imports (it holds the key), and a clone with its own id imports as a new source.
    assert.equal((await runAgent(['import', '--endpoint', s.url, '--state-dir', original], { ...codeEnv(code), ...machine })).code, 0);
    assert.equal((await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], { ...codeEnv(code), ...otherMachine() })).code, 0);
    assert.equal(await registeredCount(s, code.id), '2');
  });

  it('the code may be given as flags too', async () => {
    const code = await createCode(s);
    const run = await runAgent(
      ['import', '--endpoint', s.url, '--state-dir', stateDir(), '--token-id', code.id, '--token-code', code.code],
      otherMachine(),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, SUCCESS);
    assertClean(run, code);
  });

  it('a disabled code: exit 1, says so, imports nothing', async () => {
    const code = await createCode(s);
    assert.equal((await callV1(s.url, s.root, 'DisableAccessToken', { AccessTokenId: code.id })).status, 200);
    const dir = stateDir();
    const run = await runAgent(['import', '--endpoint', s.url, '--state-dir', dir], codeEnv(code));
    assert.equal(run.code, 1);
    assert.ok(run.stderr.includes(`the activation code has been disabled: ask for a new one (${code.id}, AccessToken.Disabled)`), run.stderr);
    assert.doesNotMatch(run.stdout, SUCCESS);
    assert.equal(existsSync(join(dir, 'source.json')), false);
    assert.equal((await sources(s, { AccessTokenId: code.id })).TotalCount, 0);
    assertClean(run, code);
  });

  it('a used-up code: a second machine gets exit 1 and "used the maximum number of times"; the first can still re-import', async () => {
    const code = await createCode(s, { Count: '1' });
    const first = stateDir();
    const firstMachine = otherMachine();
    assert.equal((await runAgent(['import', '--endpoint', s.url, '--state-dir', first], { ...codeEnv(code), ...firstMachine })).code, 0);
    const second = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], {
      ...codeEnv(code),
      ...otherMachine(),
    });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /the activation code has been used the maximum number of times: create a new one.*AccessToken\.CountExceeded/);
    assertClean(second, code);
    const again = await runAgent(['import', '--endpoint', s.url, '--state-dir', first], { ...codeEnv(code), ...firstMachine });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await registeredCount(s, code.id), '1');
    assert.equal((await sources(s, { AccessTokenId: code.id })).TotalCount, 1);
  });

  it("an address outside the code's range: exit 1, names the address range", async () => {
    const code = await createCode(s, { IpAddressRange: '10.0.0.0/8' });
    const run = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], codeEnv(code));
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /may not be used from this machine's address: .*\(127\.0\.0\.1\)\. Its IpAddressRange does not include .*AccessToken\.IpNotAllowed/,
    );
    assertClean(run, code);
  });

  it('a wrong code and a deleted code: exit 1, "does not match" / "deleted"', async () => {
    const code = await createCode(s);
    const wrong = { id: code.id, code: 'A'.repeat(32) };
    const mismatch = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], codeEnv(wrong));
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /does not match its id/);
    assertClean(mismatch, wrong);

    assert.equal((await callV1(s.url, s.root, 'DeleteAccessToken', { AccessTokenId: code.id })).status, 200);
    const deleted = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], codeEnv(code));
    assert.equal(deleted.code, 1);
    assert.match(deleted.stderr, new RegExp(`${code.id} is not known to .* has been deleted`));
    assertClean(deleted, code);
  });

  it('an unreachable server: exit 1, names the endpoint', async () => {
    const code = await createCode(s);
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const run = await runAgent(['import', '--endpoint', endpoint, '--state-dir', stateDir()], codeEnv(code));
    assert.equal(run.code, 1);
    assert.ok(run.stderr.includes(`cannot reach ${endpoint}`), run.stderr);
    assertClean(run, code);
  });

  it('usage errors exit 2: no endpoint, no code, half a code, a subcommand that does not exist', async () => {
    const code = await createCode(s);
    const dir = stateDir();
    const noEndpoint = await runAgent(['import', '--state-dir', dir], codeEnv(code));
    assert.equal(noEndpoint.code, 2);
    assert.match(noEndpoint.stderr, /--endpoint \(or SMCD_ENDPOINT\) is required/);
    const noCode = await runAgent(['import', '--endpoint', s.url, '--state-dir', dir]);
    assert.equal(noCode.code, 2);
    assert.match(noCode.stderr, /--token-id and --token-code/);
    const halfCode = await runAgent(['import', '--endpoint', s.url, '--state-dir', dir], { SMCD_TOKEN_ID: code.id });
    assert.equal(halfCode.code, 2);
    assert.match(halfCode.stderr, /--token-code \(or SMCD_CODE\) is required/);
    const badName = await runAgent(['import', '--endpoint', s.url, '--state-dir', dir, '--name', '1bad'], codeEnv(code));
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /--name must start with a letter/);
    const unknown = await runAgent(['export'], codeEnv(code));
    assert.equal(unknown.code, 2);
    // The environment is read: SMCD_ENDPOINT and SMCD_AGENT_STATE_DIR stand in for the flags.
    const fromEnv = await runAgent(['import'], { ...codeEnv(code), ...otherMachine(), SMCD_ENDPOINT: s.url, SMCD_AGENT_STATE_DIR: dir });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.equal((await readState(dir)).endpoint, s.url);
    for (const r of [noEndpoint, noCode, halfCode, badName, unknown, fromEnv]) assertClean(r, code);
  });

  it('--daemon keeps the source Available over several heartbeat periods; stopped, it turns Unavailable', async () => {
    const code = await createCode(s);
    const dir = stateDir();
    const agent = startAgent(['import', '--endpoint', s.url, '--state-dir', dir, '--daemon'], { ...codeEnv(code), ...otherMachine() });
    try {
      const sourceId = await waitFor('the import line', 30_000, () => SUCCESS.exec(agent.run.stdout)?.[1]);
      const { sourceKeyId } = await readState(dir);
      // Five beats at 1 s span more than the three missed ones that would make it Unavailable.
      const observed: string[] = [];
      await waitFor('five heartbeats', 30_000, async () => {
        const src = await sourceById(s, sourceId);
        observed.push(src.State);
        return heartbeatsOf(s, sourceKeyId) >= 5 ? true : undefined;
      });
      assert.deepEqual(new Set(observed), new Set(['Available']), 'Available at every look while the agent runs');
      const src = await sourceById(s, sourceId);
      assert.equal(src.State, 'Available');
      assert.ok(src.LastHeartbeatTime > src.CreationTime, `${src.LastHeartbeatTime} after ${src.CreationTime}`);
      assert.equal(agent.child.exitCode, null, 'still running');

      agent.child.kill('SIGTERM');
      const done = await exitOf(agent);
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stdout, /Stopping heartbeats \(SIGTERM\)/);
      const offline = await waitFor('the source to go Unavailable', 30_000, async () => {
        const s2 = await sourceById(s, sourceId);
        return s2.State === 'Unavailable' ? s2 : undefined;
      });
      assert.equal(offline.ErrorCode, 'SourceServer.Offline');
      assertClean(done, code);
    } finally {
      agent.child.kill('SIGKILL');
    }
  });

  it('--daemon re-imports with the code when its source is deleted, without using another slot', async () => {
    const code = await createCode(s, { Count: '1' });
    const dir = stateDir();
    const agent = startAgent(['import', '--endpoint', s.url, '--state-dir', dir, '--daemon'], { ...codeEnv(code), ...otherMachine() });
    try {
      const sourceId = await waitFor('the import line', 30_000, () => SUCCESS.exec(agent.run.stdout)?.[1]);
      assert.equal((await callV1(s.url, s.root, 'DeleteSourceServer', { SourceId: sourceId })).status, 200);
      const back = await waitFor('the source to come back', 30_000, async () => {
        const listed = await sources(s, { AccessTokenId: code.id });
        return listed.TotalCount === 1 ? listed.SourceServers.SourceServer[0] : undefined;
      });
      assert.equal(back.State, 'Available');
      assert.match(agent.run.stderr, /importing this machine again with the activation code/);
      assert.equal(await registeredCount(s, code.id), '1');
      const state = await readState(dir);
      assert.equal(state.sourceId, back.SourceId);
      await waitFor('a heartbeat with the new key', 30_000, () => (heartbeatsOf(s, state.sourceKeyId) >= 1 ? true : undefined));
      agent.child.kill('SIGTERM');
      const done = await exitOf(agent);
      assert.equal(done.code, 0, done.stderr);
      assertClean(done, code);
    } finally {
      agent.child.kill('SIGKILL');
    }
  });

  it('--daemon without a code resumes from the state file, and exits 1 when its source is deleted', async () => {
    const code = await createCode(s);
    const dir = stateDir();
    assert.equal((await runAgent(['import', '--endpoint', s.url, '--state-dir', dir], { ...codeEnv(code), ...otherMachine() })).code, 0);
    const { sourceId, sourceKeyId } = await readState(dir);
    const before = heartbeatsOf(s, sourceKeyId);
    const agent = startAgent(['import', '--daemon', '--state-dir', dir]);
    try {
      await waitFor('the resume line', 30_000, () => (agent.run.stdout.includes(`Resuming source [${sourceId}]`) ? true : undefined));
      await waitFor('a heartbeat', 30_000, () => (heartbeatsOf(s, sourceKeyId) > before ? true : undefined));
      assert.equal((await callV1(s.url, s.root, 'DeleteSourceServer', { SourceId: sourceId })).status, 200);
      const done = await exitOf(agent);
      assert.equal(done.code, 1);
      assert.match(done.stderr, new RegExp(`no longer accepts the key of source ${sourceId}.*deleted.*with an activation code`));
    } finally {
      agent.child.kill('SIGKILL');
    }
  });

  it('--daemon survives an unreachable server and 503s with a one-line warning per beat, then beats again', async () => {
    const code = await createCode(s);
    const dir = stateDir();
    // A pass-through proxy that can drop connections or answer 503, as a load balancer would.
    let mode: 'pass' | 'reset' | 'unavailable' = 'pass';
    let failed = 0;
    const proxy: Server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      if (mode === 'reset') {
        failed++;
        req.socket.destroy();
        return;
      }
      if (mode === 'unavailable') {
        failed++;
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ RequestId: '00000000-0000-0000-0000-000000000000', Code: 'ServiceUnavailable', Message: 'down for a test' }));
        return;
      }
      const upstream = await fetch(`${s.url}/`, {
        method: 'POST',
        headers: { 'content-type': String(req.headers['content-type']) },
        body: Buffer.concat(chunks),
      });
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
      res.end(await upstream.text());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const agent = startAgent(['import', '--endpoint', endpoint, '--state-dir', dir, '--daemon'], { ...codeEnv(code), ...otherMachine() });
    try {
      await waitFor('the import line', 30_000, () => SUCCESS.exec(agent.run.stdout)?.[1]);
      const { sourceKeyId } = await readState(dir);
      mode = 'reset';
      await waitFor('a dropped heartbeat', 30_000, () => (failed >= 1 ? true : undefined));
      mode = 'unavailable';
      await waitFor('a 503 heartbeat', 30_000, () => (failed >= 2 ? true : undefined));
      const before = heartbeatsOf(s, sourceKeyId);
      mode = 'pass';
      await waitFor('heartbeats to resume', 30_000, () => (heartbeatsOf(s, sourceKeyId) > before ? true : undefined));
      assert.equal(agent.child.exitCode, null, 'still running');
      const warnings = agent.run.stderr.split('\n').filter((l) => l.includes('warning: heartbeat'));
      assert.ok(
        warnings.some((l) => l.includes(`cannot reach ${endpoint}`)),
        agent.run.stderr,
      );
      assert.ok(
        warnings.some((l) => l.includes('ServiceUnavailable')),
        agent.run.stderr,
      );
      for (const l of warnings) assert.match(l, /retrying in 1 s$/);
      agent.child.kill('SIGTERM');
      const done = await exitOf(agent);
      assert.equal(done.code, 0, done.stderr);
    } finally {
      agent.child.kill('SIGKILL');
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});

describe('smcd agent import against servers with a moved clock or a strict throttle', () => {
  it('an expired code: exit 1, "has expired: create a new one"', async () => {
    // The code is created two days in the server's past with a one-day life; then the clock
    // moves to the present, where the agent's signed timestamps live.
    const clock = testClock(Date.now() - 2 * DAY_MS);
    const s = await startTestServer({ clock });
    try {
      const code = await createCode(s, { TimeToLiveInDays: '1' }, { timestamp: timestampNow(-2 * DAY_MS) });
      clock.advance(2 * DAY_MS);
      const run = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], codeEnv(code));
      assert.equal(run.code, 1);
      assert.ok(run.stderr.includes(`the activation code has expired: create a new one (${code.id}, AccessToken.Expired)`), run.stderr);
      assertClean(run, code);
      // A machine whose clock is far from the server's is told so, not that its code is wrong.
      clock.advance(DAY_MS);
      const skewed = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], codeEnv(code));
      assert.equal(skewed.code, 1);
      assert.match(skewed.stderr, /clock is more than 15 minutes away/);
    } finally {
      await s.close();
    }
  });

  it('a throttled address: exit 1, "Throttling.User", wait and retry', async () => {
    const s = await startTestServer({ authFailureLimit: 1 });
    try {
      const code = await createCode(s);
      const wrong = { id: code.id, code: 'B'.repeat(32) };
      for (let i = 0; i < 2; i++) {
        const r = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], codeEnv(wrong));
        assert.match(r.stderr, /does not match/);
      }
      const run = await runAgent(['import', '--endpoint', s.url, '--state-dir', stateDir()], codeEnv(code));
      assert.equal(run.code, 1);
      assert.match(run.stderr, /too many failed authentications \(Throttling\.User\): wait a minute/);
      assertClean(run, code);
    } finally {
      await s.close();
    }
  });
});

describe('what the agent sends', () => {
  const busy: MachineInfo = {
    hostname: 'db-01',
    platform: 'Debian GNU/Linux',
    osVersion: '12',
    architecture: 'x86_64',
    kernel: '6.1.0-18-amd64',
    kernelLevel: 6,
    cores: 64,
    memoryBytes: 2 ** 38,
    systemDisk: { path: '/', device: '/dev/vda', sizeGiB: 40 },
    dataDisks: [
      { index: 1, path: '/data', device: '/dev/vdb', sizeGiB: 500 },
      { index: 2, path: '', device: '/dev/vdc', sizeGiB: 1 },
    ],
    ipv4: Array.from({ length: 100 }, (_, i) => `10.0.${i}.1`),
    ipv6: Array.from({ length: 60 }, (_, i) => `2001:db8::${i.toString(16)}:1`),
  };

  it('SystemInfo stays within 1 KiB by dropping addresses, IPv6 first, and keeps the rest whole', () => {
    const text = systemInfoOf(busy);
    assert.ok(Buffer.byteLength(text) <= 1024, `${Buffer.byteLength(text)} bytes`);
    const info = JSON.parse(text);
    assert.equal(info.ipv6.length, 0);
    assert.ok(info.ipv4.length > 0 && info.ipv4.length < 100);
    assert.deepEqual(info.ipv4, busy.ipv4.slice(0, info.ipv4.length));
    assert.deepEqual(
      { ...info, ipv4: [], ipv6: [] },
      { hostname: 'db-01', ipv4: [], ipv6: [], cores: 64, memory: 2 ** 38, kernel: '6.1.0-18-amd64', os: 'Debian GNU/Linux 12' },
    );
    const quiet = JSON.parse(systemInfoOf({ ...busy, ipv4: ['10.0.0.1'], ipv6: ['2001:db8::1'] }));
    assert.deepEqual([quiet.ipv4, quiet.ipv6], [['10.0.0.1'], ['2001:db8::1']]);
  });

  it('ImportSourceServer parameters: Platform from name and version, disks, and Name only when given', () => {
    const p = importParams(busy, 'abc123');
    assert.equal(p.MachineId, 'abc123');
    assert.equal(p.Platform, 'Debian GNU/Linux 12');
    assert.equal(p.Architecture, 'x86_64');
    assert.equal(p.KernelLevel, 6);
    assert.equal(p.SystemDiskSize, 40);
    assert.deepEqual(p.DataDisk, [
      { Index: 1, Path: '/data', Size: 500 },
      { Index: 2, Path: '', Size: 1 },
    ]);
    assert.equal(p.Name, undefined);
    assert.equal(p.AgentVersion, PACKAGE_VERSION);
    assert.equal(importParams(busy, 'abc123', { name: 'db' }).Name, 'db');
    const bare = importParams({ ...busy, systemDisk: null, dataDisks: [] }, 'abc123');
    assert.equal(bare.SystemDiskSize, undefined);
    assert.equal(bare.DataDisk, undefined);
  });
});

describe('secrets', () => {
  it('no activation code and no source key secret appears in anything any agent printed', () => {
    assert.ok(transcripts.length > 20 && secrets.size > 10, 'the other tests ran');
    for (const secret of secrets) for (const text of transcripts) assert.ok(!text.includes(secret), 'a secret was printed');
  });
});
