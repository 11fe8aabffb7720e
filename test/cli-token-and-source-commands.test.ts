import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SMCD_BIN } from './helpers/process-server.ts';
import { type Run, runProcess } from './helpers/run-process.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';

const API_ERROR = (code: string) =>
  new RegExp(`^${code.replace(/\./g, '\\.')}: .+ \\(RequestId [0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\\)\\n$`);
const UNKNOWN_KEY: Creds = { id: 'LTAI00000000000000000000', secret: '000000000000000000000000000000' };

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('smcd token and smcd source, run as processes against a real server', () => {
  let s: TestServer;
  /** An empty working directory: no ./data to fall back on unless a test puts one there. */
  let cwd: string;
  const dirs: string[] = [];

  /** `node bin/smcd.js ...` with a clean environment: nothing inherited can supply credentials or an endpoint. */
  function smcd(args: string[], env: Record<string, string> = {}, dir = cwd): Promise<Run> {
    const base: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(SMCD_|ALIBABA_CLOUD_|NODE_TEST)/.test(k)) base[k] = v;
    return runProcess(process.execPath, [SMCD_BIN, ...args], { cwd: dir, env: { ...base, ...env } });
  }

  /** The usual invocation: this server, root credentials from its data dir. */
  const op = (args: string[], env: Record<string, string> = {}) => smcd([...args, '--endpoint', s.url, '--data-dir', s.dir], env);

  async function ok(args: string[], env: Record<string, string> = {}): Promise<string> {
    const r = await op(args, env);
    assert.equal(r.code, 0, `smcd ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.equal(r.stderr, '');
    return r.stdout;
  }

  const json = async (args: string[]) => JSON.parse(await ok([...args, '--output', 'json']));

  async function api(action: string, params: Record<string, string> = {}, creds: Creds = s.root) {
    const res = await callV1(s.url, creds, action, params);
    assert.equal(res.status, 200, res.text);
    return res.body;
  }

  before(async () => {
    s = await startTestServer();
    cwd = tempDir('smcd-cli-cwd-');
    dirs.push(cwd);
  });

  after(async () => {
    await s.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('--help on each command and subcommand shows the usage and an example, exit 0', async () => {
    const top = await smcd(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /^ {2}token {2,}/m);
    assert.match(top.stdout, /^ {2}source {2,}/m);
    for (const [args, command] of [
      [['token', '--help'], 'token'],
      [['token', 'create', '--help'], 'token'],
      [['token', 'list', '--help'], 'token'],
      [['source', '--help'], 'source'],
      [['source', 'show', '--help'], 'source'],
      [['source', 'modify', '--help'], 'source'],
    ] as const) {
      const r = await smcd([...args]);
      assert.equal(r.code, 0, args.join(' '));
      assert.match(r.stdout, new RegExp(`Usage: smcd ${command} <subcommand>`));
      assert.match(r.stdout, new RegExp(`Example:\\n {2}smcd ${command} `));
      assert.match(r.stdout, /--endpoint <value> .*SMCD_ENDPOINT/);
    }
  });

  it('token create prints the code once with the one-line import commands, and the printed line imports a source', async () => {
    const out = await ok([
      'token',
      'create',
      '--name',
      'cli-wave',
      '--description',
      'made by the cli test',
      '--count',
      '2',
      '--ttl-days',
      '7',
      '--ip-range',
      '127.0.0.1/32',
    ]);
    const id = /^AccessTokenId: +(at-[a-z0-9]{20})$/m.exec(out)?.[1];
    const code = /^AccessTokenCode: +([A-Za-z0-9]{32})$/m.exec(out)?.[1];
    assert.ok(id && code, out);
    assert.match(out, /will not be shown again/);
    const pair = `SMCD_CODE_ID=${id} SMCD_CODE=${code}`;
    const curlLine = `curl -fsSL ${s.url}/agent/smcd-agent.sh | ${pair} sh -s -- import`;
    assert.ok(out.includes(`\n  ${curlLine}\n`), out);
    assert.ok(out.includes(`\n  wget -qO- ${s.url}/agent/smcd-agent.sh | ${pair} sh -s -- import\n`), out);
    assert.ok(out.includes(`\n  ${pair} smcd agent import --endpoint ${s.url}\n`), out);
    const [listed] = (await api('ListAccessTokens', { 'AccessTokenId.1': id })).AccessTokens.AccessToken;
    assert.deepEqual(
      {
        Name: listed.Name,
        Description: listed.Description,
        Count: listed.Count,
        TimeToLiveInDays: listed.TimeToLiveInDays,
        IpAddressRange: listed.IpAddressRange,
      },
      { Name: 'cli-wave', Description: 'made by the cli test', Count: '2', TimeToLiveInDays: '7', IpAddressRange: '127.0.0.1/32' },
    );

    const imported = await api(
      'ImportSourceServer',
      {
        MachineId: 'cli-machine-1',
        Hostname: 'cli-host-1',
        Platform: 'Debian GNU/Linux 12',
        Architecture: 'arm64',
        KernelLevel: '6',
        SystemDiskSize: '40',
        'DataDisk.1.Index': '1',
        'DataDisk.1.Path': '/srv',
        'DataDisk.1.Size': '2048',
      },
      { id, secret: code },
    );
    const sourceId = imported.SourceId as string;

    // source list, by code, in a table and as JSON.
    const table = await ok(['source', 'list', '--token-id', id]);
    const [header, line, footer] = table.trimEnd().split('\n');
    assert.match(header!, /^SOURCE ID +NAME +STATE +APPROVAL +PLATFORM +ARCH +DISKS +LAST HEARTBEAT +ACCESS TOKEN ID +TAGS$/);
    assert.match(
      line!,
      new RegExp(`^${sourceId} +cli-host-1 +Available +Approved +Debian GNU/Linux 12 +arm64 +40G \\+ 2T +\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z +${id} +-$`),
    );
    assert.equal(footer, 'Page 1 of 1, 1 source server in all.');
    const listedJson = await json(['source', 'list', '--token-id', id]);
    assert.equal(listedJson.TotalCount, 1);
    assert.equal(listedJson.SourceServers.SourceServer[0].SourceId, sourceId);

    // source show, then modify, then show again.
    const shown = await ok(['source', 'show', sourceId]);
    assert.match(shown, new RegExp(`^SourceId: +${sourceId}$`, 'm'));
    assert.match(shown, /^Name: +cli-host-1$/m);
    assert.match(shown, /^State: +Available$/m);
    assert.match(shown, /^Architecture: +arm64$/m);
    assert.match(shown, /^DataDisk 1: +2048 GiB \/srv$/m);
    assert.match(shown, new RegExp(`^AccessTokenId: +${id}$`, 'm'));
    // The import's audit fields: when and from where.
    assert.match(shown, /^FirstImportTime: +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m);
    assert.match(shown, /^FirstClientIp: +127\.0\.0\.1$/m);
    assert.match(shown, /^LastImportTime: +\d{4}-\d\d-\d\dT/m);
    assert.match(shown, /^LastClientIp: +127\.0\.0\.1$/m);
    assert.match(await ok(['source', 'modify', sourceId, '--name', 'cli-renamed', '--description', 'moves in wave 2']), /modified/);
    const after = await json(['source', 'show', sourceId]);
    assert.equal(after.Name, 'cli-renamed');
    assert.equal(after.Description, 'moves in wave 2');
    assert.equal(after.Hostname, 'cli-host-1');
    const cleared = await json(['source', 'modify', sourceId, '--description', '']);
    assert.equal(cleared.SourceId, sourceId);
    assert.equal((await json(['source', 'show', sourceId])).Description, '');

    // source delete: gone afterwards, and a second delete is an API error.
    assert.match(await ok(['source', 'delete', sourceId]), /deleted/);
    const gone = await op(['source', 'show', sourceId]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, API_ERROR('InvalidSourceId.NotFound'));
    const again = await op(['source', 'delete', sourceId]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, API_ERROR('InvalidSourceId.NotFound'));
    // The deleted source's import stays counted on the code.
    assert.equal((await api('ListAccessTokens', { 'AccessTokenId.1': id })).AccessTokens.AccessToken[0].RegisteredCount, '1');
  });

  it('the printed one-line command, run as printed by sh, imports the machine without showing the code', async () => {
    const out = await ok(['token', 'create', '--name', 'one-liner', '--count', '1']);
    const curlLine = /^ {2}(curl -fsSL .*)$/m.exec(out)?.[1];
    const code = /^AccessTokenCode: +([A-Za-z0-9]{32})$/m.exec(out)?.[1];
    assert.ok(curlLine && code, out);
    // Its systemd/cron install and its state are kept out of this test machine's own.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: s.dir,
      SMCD_NO_INSTALL: '1',
      SMCD_STATE_FILE: `${s.dir}/cli-agent-state`,
      SMCD_MACHINE_ID: 'cli-one-liner',
    };
    const oneLine = await runProcess('/bin/sh', ['-c', curlLine], { env });
    assert.equal(oneLine.code, 0, oneLine.stderr);
    const sourceId = /Import Source Server \[(s-[a-z0-9]{20})\] Successfully!/.exec(oneLine.stdout)?.[1];
    assert.ok(sourceId, oneLine.stdout);
    assert.ok(!oneLine.stdout.includes(code) && !oneLine.stderr.includes(code));
    const [source] = (await api('DescribeSourceServers', { 'SourceId.1': sourceId })).SourceServers.SourceServer;
    assert.equal(source.MachineId, 'cli-one-liner');
    assert.match(source.AgentVersion, /^sh-/);
  });

  it('token create --output json carries the code and the agent command; a --client-token retry never repeats the code', async () => {
    const first = await json(['token', 'create', '--name', 'json-wave', '--client-token', 'retry-me']);
    assert.match(first.AccessTokenId, /^at-[a-z0-9]{20}$/);
    assert.match(first.AccessTokenCode, /^[A-Za-z0-9]{32}$/);
    assert.match(first.RequestId, /^[0-9A-F-]{36}$/);
    const pair = `SMCD_CODE_ID=${first.AccessTokenId} SMCD_CODE=${first.AccessTokenCode}`;
    assert.equal(first.ImportCommand, `curl -fsSL ${s.url}/agent/smcd-agent.sh | ${pair} sh -s -- import`);
    assert.equal(first.ImportCommandWget, `wget -qO- ${s.url}/agent/smcd-agent.sh | ${pair} sh -s -- import`);
    assert.equal(first.AgentCommand, `${pair} smcd agent import --endpoint ${s.url}`);

    const replay = await ok(['token', 'create', '--name', 'json-wave', '--client-token', 'retry-me']);
    assert.match(replay, new RegExp(`^AccessTokenId: +${first.AccessTokenId}$`, 'm'));
    assert.match(replay, /not shown again/);
    assert.ok(!replay.includes(first.AccessTokenCode));
    assert.ok(!replay.includes('SMCD_CODE='));
    const replayJson = await json(['token', 'create', '--name', 'json-wave', '--client-token', 'retry-me']);
    assert.equal(replayJson.AccessTokenCode, '');
    assert.deepEqual([replayJson.ImportCommand, replayJson.AgentCommand], ['', '']);
  });

  it('token create names the server by its --public-url, as machines reach it behind a proxy or tunnel', async () => {
    const behindProxy = await startTestServer({ publicUrl: 'https://smcd.example.test:8443' });
    try {
      const r = await smcd(['token', 'create', '--output', 'json', '--endpoint', behindProxy.url, '--data-dir', behindProxy.dir]);
      assert.equal(r.code, 0, r.stderr);
      const created = JSON.parse(r.stdout);
      assert.match(created.ImportCommand, /^curl -fsSL https:\/\/smcd\.example\.test:8443\/agent\/smcd-agent\.sh \| SMCD_CODE_ID=at-/);
      assert.match(created.AgentCommand, /smcd agent import --endpoint https:\/\/smcd\.example\.test:8443$/);
      const script = await (await fetch(`${behindProxy.url}/agent/smcd-agent.sh`)).text();
      assert.ok(script.includes("served_endpoint='https://smcd.example.test:8443'"), 'the served agent names the public URL');
    } finally {
      await behindProxy.close();
    }

    const mismatch = await op(['token', 'create', '--name', 'other-name', '--client-token', 'retry-me']);
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, API_ERROR('IdempotentParameterMismatch'));
  });

  it('keys list prints a table with a header: id, status, root, actions, creation time, description', async () => {
    const made = await smcd([
      'keys',
      'create',
      '--actions',
      'ListAccessTokens',
      '--description',
      'ci pipeline',
      '--output',
      'json',
      '--data-dir',
      s.dir,
    ]);
    assert.equal(made.code, 0, made.stderr);
    const created = JSON.parse(made.stdout);
    const listed = await smcd(['keys', 'list', '--data-dir', s.dir]);
    assert.equal(listed.code, 0, listed.stderr);
    const table = listed.stdout;
    const [header, ...rows] = table.trimEnd().split('\n');
    assert.match(header!, /^ACCESS KEY ID +STATUS +ROOT +ACTIONS +CREATED +DESCRIPTION$/);
    assert.ok(
      rows.some((r) => new RegExp(`^${s.root.id} +Enabled +root +\\* +\\S+Z +root$`).test(r)),
      table,
    );
    assert.ok(
      rows.some((r) => new RegExp(`^${created.AccessKeyId} +Enabled +- +ListAccessTokens +\\S+Z +ci pipeline$`).test(r)),
      table,
    );
    assert.ok(!table.includes(created.AccessKeySecret), 'never the secret');
  });

  it('token list filters by --status, --name and repeated --id, and pages, as a table and as JSON', async () => {
    const ids: string[] = [];
    for (const name of ['list-a', 'list-b', 'list-c']) ids.push((await api('CreateAccessToken', { Name: name, Count: '5' })).AccessTokenId);
    await api('DisableAccessToken', { AccessTokenId: ids[1]! });

    const byName = await json(['token', 'list', '--name', 'list-b']);
    assert.equal(byName.TotalCount, 1);
    assert.equal(byName.AccessTokens.AccessToken[0].AccessTokenId, ids[1]!);
    assert.equal(byName.AccessTokens.AccessToken[0].Status, 'unactivated');

    const byIds = await json(['token', 'list', '--id', ids[0]!, '--id', ids[2]!]);
    assert.deepEqual(byIds.AccessTokens.AccessToken.map((t: { AccessTokenId: string }) => t.AccessTokenId).sort(), [ids[0]!, ids[2]!].sort());

    const unactivated = await json(['token', 'list', '--status', 'unactivated', '--id', ids[0]!, '--id', ids[1]!, '--id', ids[2]!]);
    assert.deepEqual(
      unactivated.AccessTokens.AccessToken.map((t: { AccessTokenId: string }) => t.AccessTokenId),
      [ids[1]!],
    );

    const all = await json(['token', 'list', '--page-size', '50']);
    const page2 = await json(['token', 'list', '--page', '2', '--page-size', '2']);
    assert.equal(page2.PageNumber, 2);
    assert.equal(page2.PageSize, 2);
    assert.equal(page2.TotalCount, all.TotalCount);
    assert.deepEqual(
      page2.AccessTokens.AccessToken.map((t: { AccessTokenId: string }) => t.AccessTokenId),
      all.AccessTokens.AccessToken.slice(2, 4).map((t: { AccessTokenId: string }) => t.AccessTokenId),
    );

    const table = await ok(['token', 'list', '--id', ids[0]!, '--id', ids[1]!]);
    const lines = table.trimEnd().split('\n');
    assert.match(lines[0]!, /^ACCESS TOKEN ID +NAME +STATUS +USED +REMAINING +CREATED +EXPIRES +ADDRESS RANGE +APPROVAL +TAGS$/);
    assert.match(table, new RegExp(`^${ids[0]!} +list-a +activated +0/5 +5 +\\S+Z +\\S+Z +any +- +-$`, 'm'));
    // The API says "unactivated" for a disabled code, as SMC does; the table says what it is.
    assert.match(table, new RegExp(`^${ids[1]!} +list-b +disabled +0/5 +5 `, 'm'));
    const disabled = await json(['token', 'list', '--status', 'disabled']);
    assert.deepEqual(
      disabled.AccessTokens.AccessToken.map((t: { AccessTokenId: string; Status: string; Disabled: string }) => [
        t.AccessTokenId,
        t.Status,
        t.Disabled,
      ]),
      [[ids[1]!, 'unactivated', 'true']],
    );
    assert.equal(lines.at(-1), 'Page 1 of 1, 2 activation codes in all.');

    const none = await op(['token', 'list', '--name', 'no-such-code']);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, 'No activation codes.\n');
    const beyond = await ok(['token', 'list', '--page', '999']);
    assert.match(beyond, /^Page 999 of \d+, \d+ activation codes in all\.\n$/);
    assert.equal((await op(['source', 'list', '--name', 'no-such-source'])).stdout, 'No source servers.\n');
  });

  it('token disable and delete change the code through the API; an unknown id exits 1 with Code: Message (RequestId)', async () => {
    const created = await json(['token', 'create', '--name', 'short-lived']);
    const id = created.AccessTokenId as string;
    assert.match(await ok(['token', 'disable', id]), new RegExp(`${id} disabled`));
    assert.equal((await api('ListAccessTokens', { 'AccessTokenId.1': id })).AccessTokens.AccessToken[0].Status, 'unactivated');
    const refused = await callV1(s.url, { id, secret: created.AccessTokenCode }, 'ImportSourceServer', { MachineId: 'after-disable' });
    assert.equal(refused.body.Code, 'AccessToken.Disabled');

    const deleted = await json(['token', 'delete', id]);
    assert.deepEqual(Object.keys(deleted).sort(), ['AccessTokenId', 'RequestId']);
    assert.equal((await api('ListAccessTokens', { 'AccessTokenId.1': id })).TotalCount, 0);

    for (const sub of ['disable', 'delete']) {
      const r = await op(['token', sub, id]);
      assert.equal(r.code, 1, sub);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, API_ERROR('InvalidAccessTokenId.NotFound'));
      assert.ok(r.stderr.startsWith('InvalidAccessTokenId.NotFound: The specified AccessTokenId does not exist. (RequestId '), r.stderr);
    }
  });

  it('other API errors and an unreachable server exit 1 with a message on stderr', async () => {
    const badName = await op(['token', 'create', '--name', '1-starts-with-a-digit']);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, API_ERROR('InvalidParameter.Name'));
    const badRange = await op(['token', 'create', '--ip-range', 'not-an-address']);
    assert.equal(badRange.code, 1);
    assert.match(badRange.stderr, API_ERROR('InvalidParameter.IpAddressRange'));
    for (const args of [
      ['source', 'modify', 's-00000000000000000000', '--name', 'whatever'],
      ['source', 'show', 's-00000000000000000000'],
    ]) {
      const r = await op(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, API_ERROR('InvalidSourceId.NotFound'));
    }

    const port = await closedPort();
    const down = await smcd(['token', 'list', '--endpoint', `http://127.0.0.1:${port}`, '--data-dir', s.dir]);
    assert.equal(down.code, 1);
    assert.match(
      down.stderr,
      new RegExp(
        `^cannot reach http://127\\.0\\.0\\.1:${port}: ECONNREFUSED: is smcd serving there\\? Set the endpoint with --endpoint or SMCD_ENDPOINT\\.\\n$`,
      ),
    );
    assert.equal(down.stdout, '');
  });

  it('usage errors exit 2 with one line and where to look, before any request', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['token'], /expected create, list, disable or delete/],
      [['token', 'frobnicate'], /unknown subcommand "frobnicate"/],
      [['token', 'disable'], /token disable needs <access-token-id>/],
      [['token', 'delete', 'at-1', 'at-2'], /unexpected argument "at-2"/],
      [['token', 'list', 'extra'], /unexpected argument "extra"/],
      [['token', 'list', '--count', '3'], /token list does not take --count/],
      [['token', 'disable', 'at-1', '--name', 'x'], /token disable does not take --name/],
      [['token', 'create', '--count', '0'], /--count must be an integer from 1 to 1000/],
      [['token', 'create', '--count', 'ten'], /--count must be an integer from 1 to 1000/],
      [['token', 'create', '--ttl-days', '91'], /--ttl-days must be an integer from 1 to 90/],
      [['token', 'list', '--status', 'enabled'], /--status must be one of activated, unactivated, expired/],
      [['token', 'list', '--page-size', '51'], /--page-size must be an integer from 1 to 50/],
      [['token', 'list', '--page', '0'], /--page must be an integer from 1/],
      [['token', 'list', '--output', 'yaml'], /--output must be table or json/],
      [['token', 'list', '--bogus'], /unknown flag --bogus/],
      [['token', 'list', '--access-key-id', UNKNOWN_KEY.id], /--access-key-id and --access-key-secret go together/],
      [['source'], /expected list, show, modify, delete, approve or reject/],
      [['source', 'show'], /source show needs <source-id>/],
      [['source', 'modify', 's-1'], /source modify needs --name or --description/],
      [['source', 'list', '--state', 'Online'], /--state must be one of Available, Unavailable/],
      [['source', 'list', '--description', 'x'], /source list does not take --description/],
      [['source', 'list', '--count', '1'], /unknown flag --count/],
      [['source', 'delete', 's-1', '--token-id', 'at-1'], /source delete does not take --token-id/],
    ];
    const before = s.logs.length;
    const runs = await Promise.all(cases.map(([args]) => op(args)));
    runs.forEach((r, i) => {
      const [args, message] = cases[i]!;
      assert.equal(r.code, 2, `smcd ${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '', args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
      // One line, ending with where to look: not parseArgs' explanation nor the whole help.
      assert.equal(r.stderr.split('\n').length, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.startsWith(`smcd ${args[0]}: `) && r.stderr.endsWith(`; see smcd ${args[0]} --help\n`), r.stderr);
    });
    for (const [endpoint, message] of [
      ['not a url', /--endpoint: "not a url" is not a URL/],
      ['ftp://127.0.0.1', /--endpoint must start with http/],
    ] as const) {
      const r = await smcd(['token', 'list', '--endpoint', endpoint, '--data-dir', s.dir]);
      assert.equal(r.code, 2, endpoint);
      assert.match(r.stderr, message);
    }
    const halfEnv = await op(['token', 'list'], { ALIBABA_CLOUD_ACCESS_KEY_ID: s.root.id });
    assert.equal(halfEnv.code, 2);
    assert.match(halfEnv.stderr, /set both ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET/);
    const noCredentials = await smcd(['token', 'list', '--endpoint', s.url]);
    assert.equal(noCredentials.code, 2);
    assert.match(noCredentials.stderr, /no credentials: .*data\/root-credentials\.json/);
    // None of these reached the server.
    assert.deepEqual(
      s.logs.slice(before).filter((l) => /"(requestId|RequestId)"/.test(l)),
      [],
    );
  });

  it('credentials: flags win over ALIBABA_CLOUD_ACCESS_KEY_*, which win over the root-credentials file', async () => {
    const goodEnv = { ALIBABA_CLOUD_ACCESS_KEY_ID: s.root.id, ALIBABA_CLOUD_ACCESS_KEY_SECRET: s.root.secret };
    const badEnv = { ALIBABA_CLOUD_ACCESS_KEY_ID: UNKNOWN_KEY.id, ALIBABA_CLOUD_ACCESS_KEY_SECRET: UNKNOWN_KEY.secret };
    const goodFlags = ['--access-key-id', s.root.id, '--access-key-secret', s.root.secret];
    const badFlags = ['--access-key-id', UNKNOWN_KEY.id, '--access-key-secret', UNKNOWN_KEY.secret];
    const list = ['token', 'list', '--endpoint', s.url, '--output', 'json'];
    const emptyDataDir = tempDir('smcd-cli-nodata-');
    dirs.push(emptyDataDir);

    // Flags over the environment, both ways round.
    assert.equal((await smcd([...list, ...goodFlags], badEnv)).code, 0);
    const flagsUsed = await smcd([...list, ...badFlags], goodEnv);
    assert.equal(flagsUsed.code, 1);
    assert.match(flagsUsed.stderr, API_ERROR('InvalidAccessKeyId.NotFound'));

    // The environment over the file, both ways round.
    assert.equal((await smcd([...list, '--data-dir', emptyDataDir], goodEnv)).code, 0);
    const envUsed = await smcd([...list, '--data-dir', s.dir], badEnv);
    assert.equal(envUsed.code, 1);
    assert.match(envUsed.stderr, API_ERROR('InvalidAccessKeyId.NotFound'));

    // The file: from --data-dir, from SMCD_DATA_DIR, and from ./data by default.
    assert.equal((await smcd([...list, '--data-dir', s.dir])).code, 0);
    assert.equal((await smcd(list, { SMCD_DATA_DIR: s.dir })).code, 0);
    const withData = tempDir('smcd-cli-cwd-');
    dirs.push(withData);
    mkdirSync(join(withData, 'data'));
    copyFileSync(join(s.dir, 'root-credentials.json'), join(withData, 'data', 'root-credentials.json'));
    const fromDefault = await smcd(list, {}, withData);
    assert.equal(fromDefault.code, 0, fromDefault.stderr);
    assert.ok(Array.isArray(JSON.parse(fromDefault.stdout).AccessTokens.AccessToken));
  });

  it('the endpoint comes from --endpoint, else SMCD_ENDPOINT', async () => {
    const port = await closedPort();
    const fromEnv = await smcd(['token', 'list', '--data-dir', s.dir], { SMCD_ENDPOINT: s.url });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    const flagWins = await smcd(['token', 'list', '--data-dir', s.dir, '--endpoint', s.url], { SMCD_ENDPOINT: `http://127.0.0.1:${port}` });
    assert.equal(flagWins.code, 0, flagWins.stderr);
    const envUsed = await smcd(['token', 'list', '--data-dir', s.dir], { SMCD_ENDPOINT: `http://127.0.0.1:${port}` });
    assert.equal(envUsed.code, 1);
    assert.match(envUsed.stderr, /cannot reach/);
  });

  it('source list filters by --state, --name, repeated --id and pages', async () => {
    const code = await api('CreateAccessToken', { Name: 'list-sources', Count: '10' });
    const creds = { id: code.AccessTokenId, secret: code.AccessTokenCode };
    const ids: string[] = [];
    for (const n of [1, 2, 3])
      ids.push((await api('ImportSourceServer', { MachineId: `list-machine-${n}`, Hostname: `list-host-${n}` }, creds)).SourceId);

    const byName = await json(['source', 'list', '--name', 'list-host-2']);
    assert.deepEqual(
      byName.SourceServers.SourceServer.map((x: { SourceId: string }) => x.SourceId),
      [ids[1]!],
    );
    const byIds = await json(['source', 'list', '--id', ids[0]!, '--id', ids[2]!]);
    assert.deepEqual(byIds.SourceServers.SourceServer.map((x: { SourceId: string }) => x.SourceId).sort(), [ids[0]!, ids[2]!].sort());
    const available = await json(['source', 'list', '--state', 'Available', '--token-id', code.AccessTokenId]);
    assert.equal(available.TotalCount, 3);
    const unavailable = await json(['source', 'list', '--state', 'Unavailable', '--token-id', code.AccessTokenId]);
    assert.equal(unavailable.TotalCount, 0);
    const page = await json(['source', 'list', '--token-id', code.AccessTokenId, '--page', '2', '--page-size', '2']);
    assert.equal(page.PageNumber, 2);
    assert.equal(page.SourceServers.SourceServer.length, 1);
    assert.equal(page.SourceServers.SourceServer[0].SourceId, ids[0]!); // newest first: the oldest is last
    const table = await ok(['source', 'list', '--token-id', code.AccessTokenId, '--page-size', '2']);
    assert.match(table, /Page 1 of 2, 3 source servers in all\.\n$/);
    assert.match(table, new RegExp(`^${ids[2]!} +list-host-3 +Available +Approved +- +- +- +`, 'm'));
  });
});
