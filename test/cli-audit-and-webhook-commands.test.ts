import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SMCD_BIN } from './helpers/process-server.ts';
import { type Run, runProcess } from './helpers/run-process.ts';
import { startTestServer, type TestServer } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';
import { sleep, startReceiver } from './helpers/webhook-receiver.ts';

describe('smcd audit and smcd webhook, run as processes against a real server', () => {
  let s: TestServer;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

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

  before(async () => {
    receiver = await startReceiver(() => 204);
    s = await startTestServer({ webhooks: { pollMs: 20 } });
  });
  after(async () => {
    await s.close();
    await receiver.close();
  });

  it('webhook create prints the secret once; list shows the webhook without it; deliveries; delete', async () => {
    const created = JSON.parse(
      await ok([
        'webhook',
        'create',
        '--url',
        `${receiver.url}/cli`,
        '--type',
        'AccessToken.Create',
        '--type',
        'AccessToken.Delete',
        '--output',
        'json',
      ]),
    );
    assert.match(created.WebhookId, /^wh-[a-z0-9]{20}$/);
    assert.match(created.WebhookSecret, /^[A-Za-z0-9]{32}$/);
    const table = await ok(['webhook', 'list']);
    assert.match(table, /^WEBHOOK ID +URL +EVENT TYPES +CREATED$/m);
    assert.ok(table.includes(created.WebhookId) && table.includes('AccessToken.Create,AccessToken.Delete'));
    assert.ok(!table.includes(created.WebhookSecret), 'the secret is never listed');

    const code = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'cli-audited' });
    for (let i = 0; i < 200 && receiver.received.length === 0; i++) await sleep(25);
    const deliveries = await ok(['webhook', 'deliveries', created.WebhookId]);
    assert.match(deliveries, /^EVENT ID +TYPE +STATUS +ATTEMPTS +LAST ATTEMPT +LAST STATUS$/m);
    assert.match(deliveries, /AccessToken\.Create +delivered +1 +\S+ +204/);
    assert.match(deliveries, /^Page 1 of 1, 1 delivery in all\.$/m);
    const failed = await ok(['webhook', 'deliveries', created.WebhookId, '--status', 'failed']);
    assert.equal(failed, 'No deliveries.\n');

    const audit = await ok(['audit', '--type', 'AccessToken.Create', '--resource-id', code.body.AccessTokenId]);
    assert.match(audit, /^TIME +TYPE +RESOURCE +ACTOR +CLIENT IP +DETAIL$/m);
    assert.ok(audit.includes(code.body.AccessTokenId) && audit.includes(s.root.id) && audit.includes('127.0.0.1'));
    assert.ok(!audit.includes(code.body.AccessTokenCode), 'never the code');
    await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'cli-audited-too' });
    const listed = JSON.parse(await ok(['audit', 'list', '--page-size', '1', '--output', 'json']));
    assert.equal(listed.Events.Event.length, 1);
    assert.notEqual(listed.NextToken, '', 'more than one event: a next page');
    const next = JSON.parse(await ok(['audit', '--page-size', '1', '--next-token', listed.NextToken, '--output', 'json']));
    assert.notEqual(next.Events.Event[0].EventId, listed.Events.Event[0].EventId);

    assert.match(await ok(['webhook', 'delete', created.WebhookId]), /deleted/);
    const again = await smcd(['webhook', 'delete', created.WebhookId]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /^InvalidWebhookId\.NotFound: /);
  });

  it("bad filters are refused: the server's SMC error for a type, a usage error for a page size", async () => {
    const badType = await smcd(['audit', '--type', 'AccessToken.Explode']);
    assert.notEqual(badType.code, 0);
    assert.match(badType.stderr, /^InvalidParameter\.EventType: /);
    const badSize = await smcd(['audit', '--page-size', '500']);
    assert.notEqual(badSize.code, 0);
    assert.match(badSize.stderr, /--page-size/);
    const badDays = await smcd([
      'webhook',
      'create',
      '--url',
      'http://127.0.0.1/',
      '--type',
      'AccessToken.ExpiringSoon',
      '--expiring-soon-days',
      '40',
    ]);
    assert.notEqual(badDays.code, 0);
    assert.match(badDays.stderr, /--expiring-soon-days/);
  });
});
