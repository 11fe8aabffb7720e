import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { startTestServer, type TestServer } from './helpers/server.ts';
import { assertShell, fakeSchedulers, readStateFile, runAgent, runShell, SHELL_AGENT, scratchDir, shell, shellSkip } from './helpers/shell-agent.ts';
import { callV1 } from './helpers/sign.ts';

const SUCCESS = /^Import Source Server \[(s-[a-z0-9]{20})\] Successfully!\n/;

let s: TestServer;
before(async () => {
  s = await startTestServer({ heartbeatRateSeconds: 30 });
});
after(() => s.close());

async function createCode(): Promise<{ id: string; code: string }> {
  const res = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'one-liner', Count: '10' });
  assert.equal(res.status, 200, res.text);
  return { id: res.body.AccessTokenId, code: res.body.AccessTokenCode };
}

describe('GET /agent/smcd-agent.sh', () => {
  it('serves the agent with the server URL baked in, as a shell script', async () => {
    const res = await fetch(`${s.url}/agent/smcd-agent.sh`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/x-shellscript/);
    const body = await res.text();
    assert.equal(body, readFileSync(SHELL_AGENT, 'utf8').replace("served_endpoint='__SMCD_PUBLIC_URL__'", `served_endpoint='${s.url}'`));
  });
});

for (const sh of [shell('dash'), shell('busybox')]) {
  // The inner shell of the pipe: `sh -s -- import` as the user types it, dash or BusyBox's.
  const inner = sh.name === 'busybox' ? `${sh.command} sh` : sh.command;

  describe(`the one-line import under ${sh.name}`, shellSkip(sh), () => {
    before(() => assertShell(sh));

    /** `<fetch> <url>/agent/smcd-agent.sh | SMCD_CODE_ID=.. SMCD_CODE=.. sh -s -- <args>`, as a user types it. */
    const oneLiner = (fetchCommand: string, args: string, env: Record<string, string | undefined>) =>
      runShell(sh, `${fetchCommand} "$URL/agent/smcd-agent.sh" | SMCD_CODE_ID="$ID" SMCD_CODE="$CODE" ${inner} -s -- ${args}`, { env });

    it('curl -fsSL <url>/agent/smcd-agent.sh | SMCD_CODE_ID=.. SMCD_CODE=.. sh -s -- import --no-install', async () => {
      const code = await createCode();
      const state = join(scratchDir('smcd-oneliner-'), 'state');
      const run = await oneLiner('curl -fsSL', 'import --no-install', {
        URL: s.url,
        ID: code.id,
        CODE: code.code,
        SMCD_STATE_FILE: state,
        SMCD_MACHINE_ID: `oneliner-curl-${sh.name}`,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, SUCCESS);
      assert.equal(readStateFile(state).endpoint, s.url, 'the endpoint came from the served script');
      assert.ok(!run.stdout.includes(code.code) && !run.stderr.includes(code.code));
    });

    it('wget -qO- <url>/agent/smcd-agent.sh | ... sh -s -- import: as root it also installs the heartbeat, downloading the agent again', async () => {
      const code = await createCode();
      const dir = scratchDir('smcd-oneliner-');
      const root = join(dir, 'root');
      mkdirSync(join(root, 'etc/cron.d'), { recursive: true });
      const fakes = fakeSchedulers(dir);
      const state = join(dir, 'state');
      const run = await oneLiner('wget -qO-', 'import', {
        URL: s.url,
        ID: code.id,
        CODE: code.code,
        PATH: `${fakes.bin}:${sh.path}`,
        SMCD_STATE_FILE: state,
        SMCD_MACHINE_ID: `oneliner-wget-${sh.name}`,
        SMCD_INSTALL_ROOT: root,
        SMCD_NO_INSTALL: undefined,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, SUCCESS);
      const installed = join(root, 'usr/local/sbin/smcd-agent');
      if (process.getuid?.() === 0) {
        const served = await (await fetch(`${s.url}/agent/smcd-agent.sh`)).text();
        assert.equal(readFileSync(installed, 'utf8'), served, 'piped into sh, the agent fetched itself from the route');
        assert.match(
          readFileSync(join(root, 'etc/cron.d/smcd-agent'), 'utf8'),
          /^\* \* \* \* \* root SMCD_STATE_FILE=\S+ \/usr\/local\/sbin\/smcd-agent heartbeat/m,
        );
        // The installed copy beats with the saved key and the endpoint baked into it.
        const beat = await runAgent(sh, ['heartbeat'], { script: installed, env: { SMCD_STATE_FILE: state } });
        assert.equal(beat.code, 0, beat.stderr);
      } else {
        assert.equal(existsSync(installed), false);
        assert.match(run.stdout, /not running as root, nothing was installed/);
      }
    });

    it('help, as served, shows the one-line command with this server', async () => {
      const run = await runShell(sh, `curl -fsSL "$URL/agent/smcd-agent.sh" | ${inner} -s -- help`, { env: { URL: s.url } });
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.stdout.includes(`curl -fsSL ${s.url}/agent/smcd-agent.sh | SMCD_CODE_ID=at-... SMCD_CODE=... sh -s -- import`), run.stdout);
      assert.ok(run.stdout.includes(`wget -qO- ${s.url}/agent/smcd-agent.sh | SMCD_CODE_ID=at-... SMCD_CODE=... sh -s -- import`), run.stdout);
    });
  });
}
