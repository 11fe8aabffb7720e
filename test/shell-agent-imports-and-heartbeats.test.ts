import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { DAY_MS } from '../src/domain/time.ts';
import { SMCD_BIN } from './helpers/process-server.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import {
  type AgentRun,
  assertShell,
  FIXTURES,
  readStateFile,
  recordingPath,
  runAgent,
  type Shell,
  scratchDir,
  shell,
  shellSkip,
  startAgent,
} from './helpers/shell-agent.ts';
import { callV1, timestampNow } from './helpers/sign.ts';

const SUCCESS = /^Import Source Server \[(s-[a-z0-9]{20})\] Successfully!\n$/;
const PACKAGE_VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string;

/** Every secret handed to or returned to an agent, and everything the agents printed: compared at the end. */
const secrets = new Set<string>();
const transcripts: string[] = [];

interface Code {
  id: string;
  code: string;
}

let offsetMs = 0;
let s: TestServer;
/** Records each request body on its way to the server, to see what the agent sent. */
let recorder: { url: string; bodies: URLSearchParams[]; server: Server };

before(async () => {
  s = await startTestServer({ heartbeatRateSeconds: 1, clock: () => Date.now() + offsetMs });
  const bodies: URLSearchParams[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    bodies.push(new URLSearchParams(body.toString('utf8')));
    const upstream = await fetch(`${s.url}/`, { method: 'POST', headers: { 'content-type': String(req.headers['content-type']) }, body });
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
    res.end(await upstream.text());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  recorder = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, server };
});

after(async () => {
  recorder.server.close();
  await s.close();
  // Nothing any agent printed, in any test, carries a secret.
  for (const secret of secrets) for (const text of transcripts) assert.ok(!text.includes(secret), 'an agent printed a secret');
});

async function createCode(params: Record<string, string> = {}, opts = {}): Promise<Code> {
  const res = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'shell-agent', ...params }, opts);
  assert.equal(res.status, 200, res.text);
  secrets.add(res.body.AccessTokenCode);
  return { id: res.body.AccessTokenId, code: res.body.AccessTokenCode };
}

async function source(sourceId: string) {
  const res = await callV1(s.url, s.root, 'DescribeSourceServers', { 'SourceId.1': sourceId });
  assert.equal(res.status, 200, res.text);
  return res.body.SourceServers.SourceServer[0];
}

async function registeredCount(tokenId: string): Promise<string> {
  const res = await callV1(s.url, s.root, 'ListAccessTokens', { 'AccessTokenId.1': tokenId });
  return res.body.AccessTokens.AccessToken[0].RegisteredCount;
}

function heartbeatsOf(sourceKeyId: string): number {
  return s.logs.filter((line) => {
    const entry = JSON.parse(line);
    return entry.action === 'ReportSourceServerHeartbeat' && entry.status === 200 && entry.keyId === sourceKeyId;
  }).length;
}

let machines = 0;
const newMachine = () => `sh-test-${process.pid}-${++machines}`;
const stateFile = () => join(scratchDir('smcd-state-'), 'agent', 'state');
const codeEnv = (c: Code) => ({ SMCD_CODE_ID: c.id, SMCD_CODE: c.code });

function readState(path: string) {
  const state = readStateFile(path);
  if (state.source_key_secret) secrets.add(state.source_key_secret);
  return state;
}

/** The agent as a user runs it, with its output kept for the final check. */
async function agent(sh: Shell, args: string[], env: Record<string, string | undefined>, stdin?: string): Promise<AgentRun> {
  const run = await runAgent(sh, args, { env, stdin });
  transcripts.push(run.stdout, run.stderr);
  return run;
}

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

const hmacHex = (key: string, message: string) => createHmac('sha256', key).update(message).digest('hex');

for (const sh of [shell('dash'), shell('busybox')]) {
  describe(`the shell agent under ${sh.name}, against a real server`, shellSkip(sh), () => {
    before(() => assertShell(sh));

    it('imports a CentOS 7 tree: every parameter reaches the server, one use, a 0600 state file without the code; re-import proves ownership', async () => {
      const code = await createCode({ Count: '5' });
      const machineId = newMachine();
      const state = stateFile();
      const env = { ...codeEnv(code), SMCD_PROBE_ROOT: join(FIXTURES, 'centos7'), SMCD_MACHINE_ID: machineId, SMCD_STATE_FILE: state };
      const description = "front end: x+y%=&*~!'() 中文 😀\nsecond line";
      const run = await agent(sh, ['import', '--endpoint', `${recorder.url}/`, '--name', '网站.web-01', '--description', description], env);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
      const sourceId = SUCCESS.exec(run.stdout)?.[1];
      assert.ok(sourceId, run.stdout);

      const src = await source(sourceId);
      assert.equal(src.Name, '网站.web-01');
      assert.equal(src.Description, description);
      assert.equal(src.MachineId, machineId);
      assert.equal(src.Hostname, 'centos7-web');
      assert.equal(src.Platform, 'CentOS Linux 7');
      assert.equal(src.Architecture, 'x86_64');
      assert.equal(src.KernelLevel, 3);
      assert.equal(src.AgentVersion, `sh-${PACKAGE_VERSION}`);
      assert.equal(src.SystemDiskSize, 20);
      assert.deepEqual(src.DataDisks.DataDisk, [{ Index: 1, Path: '/data', Size: 50 }]);
      assert.deepEqual(JSON.parse(src.SystemInfo), {
        hostname: 'centos7-web',
        ipv4: ['172.16.10.21', '172.16.10.22'],
        ipv6: ['2001:db8:10::21'],
        cores: 4,
        memory: 7990060 * 1024,
        kernel: '3.10.0-1160.el7.x86_64',
        os: 'CentOS Linux 7',
      });
      assert.equal(src.State, 'Available');
      assert.equal(src.AccessTokenId, code.id);
      assert.equal(await registeredCount(code.id), '1');

      const saved = readState(state);
      assert.deepEqual(Object.keys(saved), ['endpoint', 'source_id', 'source_key_id', 'source_key_secret', 'heartbeat_rate', 'machine_id']);
      assert.equal(saved.endpoint, recorder.url, 'trailing slash dropped');
      assert.equal(saved.source_id, sourceId);
      assert.match(saved.source_key_id!, /^sk-[a-z0-9]{20}$/);
      assert.match(saved.source_key_secret!, /^[A-Za-z0-9]{32}$/);
      assert.equal(saved.heartbeat_rate, '1');
      assert.equal(saved.machine_id, machineId);
      assert.equal(statSync(state).mode & 0o777, 0o600);
      assert.equal(statSync(dirname(state)).mode & 0o777, 0o700);
      const stateText = readFileSync(state, 'utf8');
      assert.ok(!stateText.includes(code.code) && !stateText.includes(code.id), 'the state file holds no activation code');
      assert.equal(recorder.bodies.at(-1)!.has('SourceProof'), false, 'no proof without a saved key');

      // Again, with the saved key: the proof of API.md 5.2 is sent and accepted.
      const again = await agent(sh, ['import', '--endpoint', recorder.url], env);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout, `Import Source Server [${sourceId}] Successfully!\n`);
      const sent = recorder.bodies.at(-1)!;
      assert.equal(sent.get('SourceKeyId'), saved.source_key_id);
      assert.equal(sent.get('SourceProof'), hmacHex(saved.source_key_secret!, `${machineId}\n${sent.get('SignatureNonce')}`));
      assert.match(sent.get('SignatureNonce')!, /^[0-9a-f]{32}$/);
      const resaved = readState(state);
      assert.equal(resaved.source_id, sourceId);
      assert.equal(resaved.source_key_id, saved.source_key_id);
      assert.notEqual(resaved.source_key_secret, saved.source_key_secret, 'a new secret');
      assert.equal(await registeredCount(code.id), '1');

      // The key lost (state removed), the same MachineId: the server refuses, and the agent says what to do.
      rmSync(state);
      const lost = await agent(sh, ['import', '--endpoint', recorder.url], env);
      assert.equal(lost.code, 1);
      assert.equal(lost.stdout, '');
      assert.match(lost.stderr, new RegExp(`another source already owns this machine's MachineId \\(${machineId}\\).*${sourceId}`));
      assert.match(
        lost.stderr,
        /cloned.*Delete that source on the server, or import from the machine that holds its key.*SMCD_MACHINE_ID.*\(SourceServer\.MachineIdInUse\)/s,
      );
      assert.equal(existsSync(state), false);
      assert.equal(await registeredCount(code.id), '1');
    });

    it('refusals are explained, exit 1, and import nothing: disabled, expired, used up, address, wrong, deleted, clock, unreachable', async () => {
      const expect = async (env: Record<string, string>, pattern: RegExp, args: string[] = []) => {
        const state = stateFile();
        const run = await agent(sh, ['import', '--endpoint', s.url, ...args], { SMCD_MACHINE_ID: newMachine(), SMCD_STATE_FILE: state, ...env });
        assert.equal(run.code, 1, `${pattern}: ${run.stderr}`);
        assert.equal(run.stdout, '');
        assert.match(run.stderr, pattern);
        assert.equal(existsSync(state), false, 'no state saved');
        return run;
      };

      const disabled = await createCode();
      assert.equal((await callV1(s.url, s.root, 'DisableAccessToken', { AccessTokenId: disabled.id })).status, 200);
      await expect(
        codeEnv(disabled),
        new RegExp(`^smcd-agent: the activation code has been disabled: ask for a new one \\(${disabled.id}, AccessToken\\.Disabled\\)\n$`),
      );

      // Created two days ago with one day to live.
      offsetMs = -2 * DAY_MS;
      const expired = await createCode({ TimeToLiveInDays: '1' }, { timestamp: timestampNow(offsetMs) });
      offsetMs = 0;
      await expect(codeEnv(expired), new RegExp(`the activation code has expired: create a new one \\(${expired.id}, AccessToken\\.Expired\\)`));

      const single = await createCode({ Count: '1' });
      const first = { SMCD_MACHINE_ID: newMachine(), SMCD_STATE_FILE: stateFile() };
      assert.equal((await agent(sh, ['import', '--endpoint', s.url], { ...codeEnv(single), ...first })).code, 0);
      await expect(
        codeEnv(single),
        /used the maximum number of times: create a new one; machines it imported before can still re-import with it .*AccessToken\.CountExceeded/,
      );
      const firstAgain = await agent(sh, ['import', '--endpoint', s.url], { ...codeEnv(single), ...first });
      assert.equal(firstAgain.code, 0, firstAgain.stderr);
      assert.equal(await registeredCount(single.id), '1');

      const bound = await createCode({ IpAddressRange: '10.0.0.0/8' });
      await expect(
        codeEnv(bound),
        /may not be used from this machine's address: .*\(127\.0\.0\.1\).*import from an allowed address or use a code whose range includes it .*AccessToken\.IpNotAllowed/,
      );

      const good = await createCode();
      await expect(
        { SMCD_CODE_ID: good.id, SMCD_CODE: 'A'.repeat(32) },
        new RegExp(`the activation code does not match its id ${good.id}: check SMCD_CODE \\(SignatureDoesNotMatch\\)`),
      );
      const deleted = await createCode();
      assert.equal((await callV1(s.url, s.root, 'DeleteAccessToken', { AccessTokenId: deleted.id })).status, 200);
      await expect(codeEnv(deleted), new RegExp(`the activation code ${deleted.id} is not known to ${s.url}: it was mistyped or has been deleted`));

      offsetMs = 60 * 60_000;
      try {
        await expect(codeEnv(good), /this machine's clock .* is more than 15 minutes away from the server's: set the clock \(NTP\)/);
      } finally {
        offsetMs = 0;
      }

      const closed = `http://127.0.0.1:${await closedPort()}`;
      await expect(codeEnv(good), new RegExp(`cannot reach ${closed}: .*Set it with --endpoint URL or SMCD_ENDPOINT`), ['--endpoint', closed]);
      assert.equal(await registeredCount(good.id), '0');
    });

    it('usage errors exit 2: no code, half a code, no endpoint, unknown command or option', async () => {
      const code = await createCode();
      const base = { SMCD_STATE_FILE: stateFile(), SMCD_MACHINE_ID: newMachine() };
      const cases: Array<[string[], Record<string, string>, RegExp]> = [
        [['import', '--endpoint', s.url], {}, /no activation code: set SMCD_CODE_ID and SMCD_CODE/],
        [['import', '--endpoint', s.url], { SMCD_CODE_ID: code.id }, /SMCD_CODE is required with SMCD_CODE_ID/],
        [['import', '--endpoint', s.url], { SMCD_CODE: code.code }, /SMCD_CODE_ID .* is required with SMCD_CODE/],
        [['import'], codeEnv(code), /no endpoint: pass --endpoint URL or set SMCD_ENDPOINT/],
        [['import', '--endpoint', 'ftp://x'], codeEnv(code), /the endpoint must be an http:\/\/ or https:\/\/ URL/],
        [['export'], {}, /unknown command "export"/],
        [['import', '--bogus'], codeEnv(code), /unknown option "--bogus"/],
        [['heartbeat', '--name', 'x'], {}, /heartbeat does not take --name/],
      ];
      for (const [args, env, pattern] of cases) {
        const run = await agent(sh, args, { ...base, ...env });
        assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, pattern);
      }
      const help = await agent(sh, ['help'], {});
      assert.equal(help.code, 0);
      assert.match(
        help.stdout,
        /curl -fsSL https:\/\/smcd\.example\.com\/agent\/smcd-agent\.sh \| SMCD_CODE_ID=at-\.\.\. SMCD_CODE=\.\.\. sh -s -- import/,
      );
      assert.match(
        help.stdout,
        /wget -qO- https:\/\/smcd\.example\.com\/agent\/smcd-agent\.sh \| SMCD_CODE_ID=at-\.\.\. SMCD_CODE=\.\.\. sh -s -- import/,
      );
    });

    it("the code from --code-stdin, from the Node agent's variable names, and the endpoint from SMCD_ENDPOINT", async () => {
      const code = await createCode();
      const viaStdin = await agent(
        sh,
        ['import', '--code-stdin', '--no-install'],
        { SMCD_ENDPOINT: s.url, SMCD_MACHINE_ID: newMachine(), SMCD_STATE_FILE: stateFile(), SMCD_NO_INSTALL: undefined },
        `${code.id}\r\n${code.code}\r\n`,
      );
      assert.equal(viaStdin.code, 0, viaStdin.stderr);
      assert.match(viaStdin.stdout, SUCCESS);
      const nodeNames = await agent(sh, ['import'], {
        SMCD_TOKEN_ID: code.id,
        SMCD_TOKEN_CODE: code.code,
        SMCD_ENDPOINT: s.url,
        SMCD_MACHINE_ID: newMachine(),
        SMCD_STATE_FILE: stateFile(),
      });
      assert.equal(nodeNames.code, 0, nodeNames.stderr);
      assert.equal(await registeredCount(code.id), '2');
    });

    it('heartbeats keep the source Available; the saved rate follows the server; a deleted source is reported', async () => {
      const code = await createCode();
      const state = stateFile();
      const env = { SMCD_STATE_FILE: state, SMCD_MACHINE_ID: newMachine() };
      const imported = await agent(sh, ['import', '--endpoint', s.url], { ...codeEnv(code), ...env });
      const sourceId = SUCCESS.exec(imported.stdout)![1]!;
      const { source_key_id: keyId } = readState(state);

      // One beat; the rate the state file names (7) is replaced by the server's (1).
      writeFileSync(state, readFileSync(state, 'utf8').replace('heartbeat_rate=1', 'heartbeat_rate=7'));
      const one = await agent(sh, ['heartbeat'], env);
      assert.equal(one.code, 0, one.stderr);
      assert.equal(one.stdout + one.stderr, '');
      assert.equal(heartbeatsOf(keyId!), 1);
      assert.equal(readState(state).heartbeat_rate, '1');
      assert.equal(statSync(state).mode & 0o777, 0o600);

      // --loop at 1 s: Available at every look for longer than the 3 s (3 missed beats) that would make it
      // Unavailable, then SIGTERM.
      const before = heartbeatsOf(keyId!);
      const loop = startAgent(sh, ['heartbeat', '--loop'], { env });
      try {
        const seen: string[] = [];
        const started = Date.now();
        while (Date.now() - started < 3_600) {
          seen.push((await source(sourceId)).State);
          await sleep(250);
        }
        assert.deepEqual(new Set(seen), new Set(['Available']));
        assert.ok(heartbeatsOf(keyId!) - before >= 3, `${heartbeatsOf(keyId!) - before} beats in 3.6 s`);
        loop.child.kill('SIGTERM');
        const done = await loop.exited;
        transcripts.push(done.stdout, done.stderr);
        assert.equal(done.code, 0, done.stderr);
        assert.match(done.stdout, new RegExp(`^Sending heartbeats for ${sourceId} to ${s.url} every 1 s`));
        assert.match(done.stdout, /Stopping heartbeats \(SIGTERM\)\.\n$/);
      } finally {
        loop.child.kill('SIGKILL');
      }
      const src = await source(sourceId);
      assert.ok(src.LastHeartbeatTime >= src.LastImportTime);

      assert.equal((await callV1(s.url, s.root, 'DeleteSourceServer', { SourceId: sourceId })).status, 200);
      const gone = await agent(sh, ['heartbeat'], env);
      assert.equal(gone.code, 1);
      assert.match(
        gone.stderr,
        new RegExp(`${s.url} no longer accepts the key of source ${sourceId} \\(InvalidAccessKeyId\\.NotFound\\): the source was deleted`),
      );
      assert.match(
        gone.stderr,
        /Import this machine again with an activation code: curl -fsSL .*\/agent\/smcd-agent\.sh \| SMCD_CODE_ID=at-\.\.\. SMCD_CODE=\.\.\. sh -s -- import/,
      );
      const noState = await agent(sh, ['heartbeat'], { SMCD_STATE_FILE: stateFile() });
      assert.equal(noState.code, 1);
      assert.match(noState.stderr, /no saved source key at .*: import this machine first/);
    });

    it('a tampered state file is read, never run: malformed values are refused', async () => {
      const dir = scratchDir('smcd-tampered-');
      const state = join(dir, 'state');
      const marker = join(dir, 'pwned');
      writeFileSync(
        state,
        [
          `endpoint=http://127.0.0.1:9/$(touch ${marker})`,
          'source_id=s-0123456789abcdefghij',
          `source_key_id=sk-x; touch ${marker}`,
          `source_key_secret=\`touch ${marker}\``,
          'heartbeat_rate=1; reboot',
          'machine_id=m',
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      const run = await agent(sh, ['heartbeat'], { SMCD_STATE_FILE: state });
      assert.equal(run.code, 1);
      assert.match(run.stderr, /is damaged \(no valid source id or key\): import this machine again/);
      writeFileSync(
        state,
        readFileSync(state, 'utf8')
          .replace(/^source_key_id=.*$/m, 'source_key_id=sk-0123456789abcdefghij')
          .replace(/^source_key_secret=.*$/m, 'source_key_secret=abc'),
      );
      const noEndpoint = await agent(sh, ['heartbeat'], { SMCD_STATE_FILE: state });
      assert.equal(noEndpoint.code, 1);
      assert.match(noEndpoint.stderr, /names no valid endpoint: pass --endpoint URL or set SMCD_ENDPOINT/);
      assert.equal(existsSync(marker), false, 'nothing in the state file was executed');
    });

    it('the code and the source secret are in no child process argv or environment, no output, no state file', async () => {
      const code = await createCode();
      const dir = scratchDir('smcd-argv-log-');
      const log = join(dir, 'argv.log');
      const tools = [
        'openssl',
        'curl',
        'wget',
        'od',
        'sed',
        'awk',
        'sort',
        'tr',
        'cut',
        'head',
        'cat',
        'mkdir',
        'chmod',
        'mv',
        'rm',
        'date',
        'uname',
        'ip',
        'hostname',
        'grep',
        'id',
        'ln',
        'nproc',
        'getconf',
        'rmdir',
        'sleep',
        'kill',
        'timeout',
        'env',
      ];
      const path = recordingPath(sh, log, tools);
      const state = stateFile();
      const env = { PATH: path, SMCD_STATE_FILE: state, SMCD_MACHINE_ID: newMachine() };
      // Import, re-import (the proof uses the first source secret), a heartbeat, and the code on stdin.
      const mine = new Set([code.code]);
      const runs: AgentRun[] = [];
      for (const [args, extra, stdin] of [
        [['import', '--endpoint', s.url], codeEnv(code), undefined],
        [['import', '--endpoint', s.url], codeEnv(code), undefined],
        [['heartbeat'], {}, undefined],
        [['import', '--code-stdin', '--endpoint', s.url], {}, `${code.id}\n${code.code}\n`],
      ] as const) {
        const run = await agent(sh, [...args], { ...env, ...extra }, stdin);
        assert.equal(run.code, 0, run.stderr);
        runs.push(run);
        mine.add(readState(state).source_key_secret!);
        assert.ok(!readFileSync(state, 'utf8').includes(code.code), 'no code in the state file');
      }
      assert.equal(mine.size, 4, 'the code and three source secrets');
      const recorded = readFileSync(log, 'utf8');
      assert.match(recorded, /ARGV\0[^\0]*\/openssl\0dgst\0-sha1\0-binary\0/, 'the wrappers saw the HMAC being computed');
      assert.match(recorded, /ARGV\0[^\0]*\/openssl\0dgst\0-sha256\0-binary\0/, 'and the ownership proof');
      assert.match(recorded, /ARGV\0[^\0]*\/curl\0/);
      for (const secret of mine) {
        assert.ok(!recorded.includes(secret), 'a secret reached the argv or environment of a child process');
        for (const r of runs) assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'a secret was printed');
      }
      assert.ok(!recorded.includes('SMCD_CODE'), 'the code variables are not inherited');
    });

    it('wget instead of curl: imports, and explains refusals as far as that wget can tell', async () => {
      const code = await createCode();
      const env = { SMCD_HTTP_CLIENT: 'wget', SMCD_STATE_FILE: stateFile(), SMCD_MACHINE_ID: newMachine() };
      const run = await agent(sh, ['import', '--endpoint', s.url], { ...env, ...codeEnv(code) });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, SUCCESS);
      const beat = await agent(sh, ['heartbeat'], env);
      assert.equal(beat.code, 0, beat.stderr);
      assert.equal((await callV1(s.url, s.root, 'DisableAccessToken', { AccessTokenId: code.id })).status, 200);
      const refused = await agent(sh, ['import', '--endpoint', s.url], {
        ...env,
        ...codeEnv(code),
        SMCD_STATE_FILE: stateFile(),
        SMCD_MACHINE_ID: newMachine(),
      });
      assert.equal(refused.code, 1);
      if (sh.name === 'busybox') {
        // BusyBox wget drops the body of an error answer: only the status is known.
        assert.match(refused.stderr, /refused the request with HTTP 403; BusyBox wget does not show the reason: install curl/);
      } else {
        assert.match(refused.stderr, /the activation code has been disabled: ask for a new one/);
      }
    });

    it('https: verified against the system store or SMCD_CA_FILE, never skipped; BusyBox wget is refused for https', async () => {
      const tls = await tlsFront();
      const code = await createCode();
      const env = { ...codeEnv(code), SMCD_STATE_FILE: stateFile(), SMCD_MACHINE_ID: newMachine() };
      try {
        const unknownCa = await agent(sh, ['import', '--endpoint', tls.url], env);
        assert.equal(unknownCa.code, 1);
        assert.match(unknownCa.stderr, new RegExp(`cannot reach ${tls.url}: .*certificate.*set SMCD_CA_FILE to that CA's certificate file`));
        const trusted = await agent(sh, ['import', '--endpoint', tls.url], { ...env, SMCD_CA_FILE: tls.caFile });
        assert.equal(trusted.code, 0, trusted.stderr);
        assert.match(trusted.stdout, SUCCESS);
        const viaWget = await agent(sh, ['heartbeat'], { ...env, SMCD_CA_FILE: tls.caFile, SMCD_HTTP_CLIENT: 'wget' });
        if (sh.name === 'busybox') {
          assert.equal(viaWget.code, 1);
          assert.match(viaWget.stderr, /only BusyBox wget, which cannot be relied on to verify the server's certificate: install curl/);
        } else {
          assert.equal(viaWget.code, 0, viaWget.stderr);
          const wgetUnknownCa = await agent(sh, ['heartbeat'], { ...env, SMCD_HTTP_CLIENT: 'wget' });
          assert.equal(wgetUnknownCa.code, 1);
          assert.match(wgetUnknownCa.stderr, /heartbeat for s-\S+ failed: cannot reach .*certificate/);
        }
      } finally {
        tls.server.close();
      }
    });
  });
}

/** A server that answers every request with one fixed response, for failures a real one rarely gives. */
async function stub(status: number, body: string, type = 'application/json;charset=utf-8') {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(status, { 'content-type': type }).end(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

for (const sh of [shell('dash'), shell('busybox')]) {
  describe(`answers only a broken or busy server gives, under ${sh.name}`, shellSkip(sh), () => {
    before(() => assertShell(sh));

    it('503, 429, an unknown code with quotes and escapes in its message, HTML, and a 200 without a source', async () => {
      const cases: Array<[number, string, string, RegExp]> = [
        [
          503,
          JSON.stringify({ RequestId: 'R1', Code: 'ServiceUnavailable', Message: 'down' }),
          'application/json',
          /cannot reach its store right now \(ServiceUnavailable\): try again shortly/,
        ],
        [
          429,
          JSON.stringify({ RequestId: 'R2', Code: 'Throttling.User', Message: 'slow down' }),
          'application/json',
          /is refusing this address after too many failed authentications \(Throttling\.User\): wait a minute/,
        ],
        [
          400,
          JSON.stringify({
            RequestId: 'R3',
            HostId: 'h',
            Code: 'InvalidParameter.Name',
            Message: 'may contain only "." and \\ \u001b[31mred\n{"nested":1}',
            Recommend: 'x',
          }),
          'application/json',
          /refused the request: InvalidParameter\.Name: may contain only "\." and \\ {2}\[31mred \{"nested":1\} \(RequestId R3\)\n$/,
        ],
        [502, '<html><body>Bad Gateway</body></html>', 'text/html', /answered HTTP 502 without an SMC error: is it an smcd server\?/],
        [
          200,
          JSON.stringify({ RequestId: 'R4', Nested: { SourceId: 's-00000000000000000000' } }),
          'application/json',
          /answered ImportSourceServer without a SourceId and source key: is it an smcd server\?/,
        ],
      ];
      for (const [status, body, type, pattern] of cases) {
        const srv = await stub(status, body, type);
        try {
          const state = stateFile();
          const run = await agent(sh, ['import', '--endpoint', srv.url], {
            SMCD_CODE_ID: 'at-aaaaaaaaaaaaaaaaaaaa',
            SMCD_CODE: 'B'.repeat(32),
            SMCD_STATE_FILE: state,
            SMCD_MACHINE_ID: newMachine(),
          });
          assert.equal(run.code, 1, run.stderr);
          assert.match(run.stderr, pattern);
          assert.ok(!run.stderr.includes('\u001b'), 'no terminal escape reaches the terminal');
          assert.equal(existsSync(state), false);
        } finally {
          srv.server.close();
        }
      }
    });
  });
}

/** A TLS front for the test server, with a certificate of its own CA (written to caFile). */
async function tlsFront() {
  const dir = scratchDir('smcd-tls-');
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const server = createTlsServer({ key: readFileSync(key), cert: readFileSync(cert) }, async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const upstream = await fetch(`${s.url}/`, {
      method: 'POST',
      headers: { 'content-type': String(req.headers['content-type']) },
      body: Buffer.concat(chunks),
    });
    res.writeHead(upstream.status, { 'content-type': 'application/json' });
    res.end(await upstream.text());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, caFile: cert, server };
}

describe('the shell agent beside the Node agent', shellSkip(shell('dash')), () => {
  it("re-imports a machine the Node agent imported, proving ownership with its source.json, and keeps that file's key working", async () => {
    const sh = shell('dash');
    assertShell(sh);
    const code = await createCode();
    secrets.add(code.code);
    const stateDir = join(scratchDir('smcd-both-'), '.smcd-agent');
    const machineId = newMachine();
    const nodeRun = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [SMCD_BIN, 'agent', 'import', '--endpoint', s.url, '--state-dir', stateDir], {
        env: {
          PATH: process.env.PATH,
          HOME: dirname(stateDir),
          SMCD_TOKEN_ID: code.id,
          SMCD_TOKEN_CODE: code.code,
          SMCD_AGENT_MACHINE_ID: machineId,
        },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => (stdout += c));
      child.stderr.on('data', (c) => (stderr += c));
      child.once('close', (c) => resolve({ code: c, stdout, stderr }));
    });
    assert.equal(nodeRun.code, 0, nodeRun.stderr);
    const nodeState = JSON.parse(readFileSync(join(stateDir, 'source.json'), 'utf8'));
    secrets.add(nodeState.sourceKeySecret);

    // The shell agent's default state for a non-root user is ~/.smcd-agent/state, beside source.json.
    const run = await agent(sh, ['import', '--endpoint', s.url], {
      ...codeEnv(code),
      SMCD_STATE_FILE: join(stateDir, 'state'),
      SMCD_MACHINE_ID: machineId,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `Import Source Server [${nodeState.sourceId}] Successfully!\n`);
    assert.equal(await registeredCount(code.id), '1');

    const updated = JSON.parse(readFileSync(join(stateDir, 'source.json'), 'utf8'));
    const ours = readState(join(stateDir, 'state'));
    assert.deepEqual(updated, {
      endpoint: s.url,
      sourceId: ours.source_id!,
      sourceKeyId: ours.source_key_id!,
      sourceKeySecret: ours.source_key_secret!,
      heartbeatRate: 1,
    });
    assert.notEqual(updated.sourceKeySecret, nodeState.sourceKeySecret);
    assert.equal(statSync(join(stateDir, 'source.json')).mode & 0o777, 0o600);
    const beat = await callV1(s.url, { id: updated.sourceKeyId, secret: updated.sourceKeySecret }, 'ReportSourceServerHeartbeat', {
      SourceId: updated.sourceId,
    });
    assert.equal(beat.status, 200, 'the Node agent can keep beating with the key the shell agent saved for it');
  });
});
