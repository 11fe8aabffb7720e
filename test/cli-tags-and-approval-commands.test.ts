import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SMCD_BIN } from './helpers/process-server.ts';
import { type Run, runProcess } from './helpers/run-process.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { type Creds, callV1 } from './helpers/sign.ts';

const API_ERROR = (code: string) =>
  new RegExp(`^${code.replace(/\./g, '\\.')}: .+ \\(RequestId [0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\\)\\n$`);

describe('smcd tag, --tag and --require-approval on token, source approve|reject: run as processes against a real server', () => {
  let s: TestServer;

  /** `node bin/smcd.js ...` against this server with its root credentials; nothing inherited supplies credentials. */
  function smcd(args: string[]): Promise<Run> {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(SMCD_|ALIBABA_CLOUD_|NODE_TEST)/.test(k)) env[k] = v;
    return runProcess(process.execPath, [SMCD_BIN, ...args, '--endpoint', s.url, '--data-dir', s.dir], { env });
  }
  async function ok(args: string[]): Promise<string> {
    const r = await smcd(args);
    assert.equal(r.code, 0, `smcd ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.equal(r.stderr, '');
    return r.stdout;
  }
  const json = async (args: string[]) => JSON.parse(await ok([...args, '--output', 'json']));
  async function importWith(code: Creds, machineId: string) {
    const r = await callV1(s.url, code, 'ImportSourceServer', { MachineId: machineId, Hostname: machineId });
    assert.equal(r.status, 200, r.text);
    return { sourceId: String(r.body.SourceId), key: { id: String(r.body.SourceKeyId), secret: String(r.body.SourceKeySecret) } };
  }
  async function create(args: string[]): Promise<Creds> {
    const created = await json(['token', 'create', ...args]);
    return { id: created.AccessTokenId, secret: created.AccessTokenCode };
  }

  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('token create --tag KEY=VALUE (repeatable) --require-approval; token list shows and filters by them', async () => {
    const tagged = await create(['--tag', 'env=prod', '--tag', 'team=db', '--require-approval']);
    const plain = await create(['--tag', 'env=dev']);
    const listed = await json(['token', 'list', '--tag', 'env=prod']);
    assert.deepEqual(
      listed.AccessTokens.AccessToken.map((t: any) => [t.AccessTokenId, t.RequireApproval, t.Tags.Tag]),
      [
        [
          tagged.id,
          'true',
          [
            { Key: 'env', Value: 'prod' },
            { Key: 'team', Value: 'db' },
          ],
        ],
      ],
    );
    const anyEnv = await json(['token', 'list', '--tag', 'env']);
    assert.deepEqual(anyEnv.AccessTokens.AccessToken.map((t: any) => t.AccessTokenId).sort(), [tagged.id, plain.id].sort());
    const table = await ok(['token', 'list']);
    assert.match(table.split('\n')[0]!, /\bAPPROVAL\b.*\bTAGS$/);
    const row = table.split('\n').find((l) => l.startsWith(tagged.id))!;
    assert.match(row, /required\s+env=prod team=db$/);
    assert.match(table.split('\n').find((l) => l.startsWith(plain.id))!, /-\s+env=dev$/);
  });

  it('tag add | remove | list on sources and codes; the source list shows and filters by tags', async () => {
    const code = await create([]);
    const src = await importWith(code, 'cli-tag-machine');
    assert.match(await ok(['tag', 'add', '--type', 'sourceserver', '--id', src.sourceId, '--tag', 'env=prod', '--tag', 'rack=r1']), /^Tagged: s-/);
    await ok(['tag', 'add', '--type', 'accesstoken', '--id', code.id, '--tag', 'owner=ops']);
    const listed = await ok(['tag', 'list', '--type', 'sourceserver', '--id', src.sourceId]);
    assert.deepEqual(listed.trimEnd().split('\n'), [
      `${'RESOURCE ID'.padEnd(src.sourceId.length)}  KEY   VALUE`,
      `${src.sourceId}  env   prod`,
      `${src.sourceId}  rack  r1`,
    ]);
    const byTag = await json(['tag', 'list', '--type', 'accesstoken', '--tag', 'owner=ops']);
    assert.deepEqual(byTag.TagResources.TagResource, [
      { ResourceId: code.id, ResourceType: 'ALIYUN::SMC::ACCESSTOKEN', TagKey: 'owner', TagValue: 'ops' },
    ]);
    const sources = await ok(['source', 'list', '--tag', 'rack=r1']);
    assert.match(sources.split('\n')[0]!, /\bAPPROVAL\b.*\bTAGS$/);
    assert.match(sources.split('\n')[1]!, new RegExp(`^${src.sourceId}.*Approved.*env=prod rack=r1$`));
    assert.match(await ok(['source', 'list', '--tag', 'rack=r2']), /^No source servers\.\n$/);
    await ok(['tag', 'remove', '--type', 'sourceserver', '--id', src.sourceId, '--key', 'rack']);
    assert.match(await ok(['source', 'show', src.sourceId]), /^Tags:\s+env=prod$/m);
    await ok(['tag', 'remove', '--type', 'sourceserver', '--id', src.sourceId, '--all']);
    assert.match(await ok(['tag', 'list', '--type', 'sourceserver', '--id', src.sourceId]), /^No tags\.\n$/);
  });

  it('tag refusals: SMC errors from the server, usage errors before any request', async () => {
    const code = await create([]);
    const badKey = await smcd(['tag', 'add', '--type', 'accesstoken', '--id', code.id, '--tag', 'acs:x=1']);
    assert.equal(badKey.code, 1);
    assert.match(badKey.stderr, API_ERROR('InvalidParameter.TagKey'));
    const unknown = await smcd(['tag', 'add', '--type', 'sourceserver', '--id', 's-nosuchsource000000000', '--tag', 'a=b']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, API_ERROR('InvalidSourceId.NotFound'));
    const noType = await smcd(['tag', 'list']);
    assert.equal(noType.code, 2);
    assert.match(noType.stderr, /--type/);
    const badType = await smcd(['tag', 'list', '--type', 'instance']);
    assert.equal(badType.code, 2);
    const stray = await smcd(['tag', 'add', '--type', 'accesstoken', '--id', code.id, '--tag', 'a=b', '--all']);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /does not take --all/);
  });

  it('source list --approval-status Pending; source approve and reject take several ids; a rejected key is refused', async () => {
    const code = await create(['--require-approval']);
    const a = await importWith(code, 'cli-approve-a');
    const b = await importWith(code, 'cli-approve-b');
    const c = await importWith(code, 'cli-reject-c');
    const pending = await json(['source', 'list', '--approval-status', 'Pending']);
    assert.deepEqual(pending.SourceServers.SourceServer.map((x: any) => x.SourceId).sort(), [a.sourceId, b.sourceId, c.sourceId].sort());
    const unknown = await smcd(['source', 'approve', a.sourceId, 's-nosuchsource000000000']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, API_ERROR('InvalidSourceId.NotFound'));
    assert.equal((await json(['source', 'list', '--approval-status', 'Pending'])).TotalCount, 3);
    assert.equal(await ok(['source', 'approve', a.sourceId, b.sourceId]), `Approved: ${a.sourceId}, ${b.sourceId}.\n`);
    assert.match(await ok(['source', 'show', a.sourceId]), /^ApprovalStatus:\s+Approved$/m);
    assert.match(await ok(['source', 'list', '--approval-status', 'Pending']), new RegExp(`^${c.sourceId}\\s.*Pending`, 'm'));
    assert.match(await ok(['source', 'reject', c.sourceId]), /^Rejected and deleted: s-/);
    const beat = await callV1(s.url, c.key, 'ReportSourceServerHeartbeat', { SourceId: c.sourceId });
    assert.equal(beat.status, 404);
    assert.equal(beat.body.Code, 'InvalidAccessKeyId.NotFound');
    const none = await smcd(['source', 'approve']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /source approve needs <source-id>\.\.\./);
  });
});
