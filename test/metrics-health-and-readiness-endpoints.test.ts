import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { callV1 } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';
import { waitFor } from './helpers/wait.ts';

/** Parses Prometheus text exposition into `name{labels}` -> value. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}

describe('/metrics, /healthz and /readyz', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('/healthz and /readyz answer 200 while the store is reachable', async () => {
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    const ready = await fetch(`${s.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), 'ready\n');
  });

  it('/metrics counts requests by Action and Code, creations, imports, refusals, latency and batch sizes', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await callV1(s.url, s.root, 'CreateAccessToken', { Count: '1' })).status, 200);
    const created = await callV1(s.url, s.root, 'CreateAccessToken', { Count: '1' });
    const code = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
    assert.equal((await callV1(s.url, code, 'ImportSourceServer', { MachineId: 'a' })).status, 200);
    assert.equal((await callV1(s.url, code, 'ImportSourceServer', { MachineId: 'b' })).body.Code, 'AccessToken.CountExceeded');
    assert.equal((await callV1(s.url, s.root, 'CreateAccessToken', { Count: '0' })).status, 400);

    const res = await fetch(`${s.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const m = parsePrometheus(await res.text());
    assert.equal(m.get('smcd_requests_total{action="CreateAccessToken",code="OK"}'), 4);
    assert.equal(m.get('smcd_requests_total{action="CreateAccessToken",code="InvalidParameter.Count"}'), 1);
    assert.equal(m.get('smcd_requests_total{action="ImportSourceServer",code="AccessToken.CountExceeded"}'), 1);
    assert.equal(m.get('smcd_access_tokens_created_total'), 4);
    assert.equal(m.get('smcd_imports_total{slot="used"}'), 1);
    assert.equal(m.get('smcd_import_refusals_total{reason="count"}'), 1);
    assert.equal(m.get('smcd_request_duration_seconds_count{action="CreateAccessToken"}'), 5);
    assert.ok((m.get('smcd_group_commit_batch_size_count') ?? 0) >= 5);
    assert.ok((m.get('process_resident_memory_bytes') ?? 0) > 0, 'the standard name, as stock dashboards expect');
    assert.ok(m.has('nodejs_eventloop_lag_p99_seconds') && m.has('nodejs_heap_size_used_bytes'));
    assert.ok(![...m.keys()].some((k) => k.startsWith('smcd_process_') || k.startsWith('smcd_nodejs_')), 'no prefixed copies');
    // The state gauges: 4 codes, one of them used up (unactivated); 1 source, Available.
    assert.equal(m.get('smcd_access_tokens{status="activated"}'), 3);
    assert.equal(m.get('smcd_access_tokens{status="unactivated"}'), 1);
    assert.equal(m.get('smcd_access_tokens{status="expired"}'), 0);
    assert.equal(m.get('smcd_source_servers{state="Available"}'), 1);
    assert.equal(m.get('smcd_source_servers{state="Unavailable"}'), 0);
  });

  it('every request is logged as structured JSON with RequestId, Action, Code, latency, address and key id, and audit lines for changes', async () => {
    const r = await callV1(s.url, s.root, 'CreateAccessToken', { Name: 'logged' });
    const line = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === r.body.RequestId && l.msg === 'request');
    assert.ok(line);
    assert.equal(line.action, 'CreateAccessToken');
    assert.equal(line.status, 200);
    assert.equal(line.clientIp, '127.0.0.1');
    assert.equal(line.keyId, s.root.id);
    assert.equal(typeof line.ms, 'number');
    const audit = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === r.body.RequestId && l.audit === 'CreateAccessToken');
    assert.equal(audit.accessTokenId, r.body.AccessTokenId);
    const refused = await callV1(s.url, s.root, 'CreateAccessToken', { Count: 'x' });
    const errLine = s.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === refused.body.RequestId);
    assert.equal(errLine.code, 'InvalidParameter.Count');
  });
});

describe('request lines at log level info', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ logLevel: 'info' });
  });
  after(() => s.close());

  it('an answered heartbeat writes no line (debug), a refused one does, and /metrics counts both', async () => {
    const created = await callV1(s.url, s.root, 'CreateAccessToken', { Count: '1' });
    const code = { id: created.body.AccessTokenId, secret: created.body.AccessTokenCode };
    const imported = await callV1(s.url, code, 'ImportSourceServer', { MachineId: 'quiet' });
    assert.equal(imported.status, 200, imported.text);
    const key = { id: imported.body.SourceKeyId, secret: imported.body.SourceKeySecret };
    const beat = await callV1(s.url, key, 'ReportSourceServerHeartbeat', { SourceId: imported.body.SourceId });
    assert.equal(beat.status, 200, beat.text);
    const refused = await callV1(s.url, key, 'ReportSourceServerHeartbeat', { SourceId: imported.body.SourceId, StatusInfo: 'x'.repeat(2000) });
    assert.equal(refused.status, 400, refused.text);

    const lines = () => s.logs.map((l) => JSON.parse(l));
    // The import is logged at info, so lines are written; the refusal's line follows the answered beat's.
    await waitFor("the refused beat's line", () => lines().some((l) => l.requestId === refused.body.RequestId), 2_000);
    assert.equal(lines().find((l) => l.requestId === refused.body.RequestId)?.status, 400);
    assert.equal(lines().filter((l) => l.requestId === beat.body.RequestId).length, 0, 'an answered heartbeat is a debug line');
    assert.ok(lines().some((l) => l.requestId === imported.body.RequestId && l.msg === 'request'));

    const m = parsePrometheus(await (await fetch(`${s.url}/metrics`)).text());
    assert.equal(m.get('smcd_requests_total{action="ReportSourceServerHeartbeat",code="OK"}'), 1);
    assert.equal(m.get('smcd_requests_total{action="ReportSourceServerHeartbeat",code="InvalidParameter.StatusInfo"}'), 1);
  });
});

for (const kind of STORE_KINDS)
  describe(`smcd_build_info (${kind})`, { skip: await storeSkipReason(kind) }, () => {
    it('is 1 with the package version, the Node.js version and the store kind as labels', async () => {
      const dir = tempDir();
      const db = await openTestDatabase(kind, dir);
      const s = await startTestServer({ dir, database: db.url });
      try {
        const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
        const text = await (await fetch(`${s.url}/metrics`)).text();
        // Only its lines: a server this fresh reports some of Node's gauges as Nan.
        const m = parsePrometheus(
          text
            .split('\n')
            .filter((l) => l.startsWith('smcd_build_info'))
            .join('\n'),
        );
        const info = [...m];
        assert.deepEqual(info, [[`smcd_build_info{version="${version}",node="${process.version}",store="${kind}"}`, 1]]);
      } finally {
        await s.close();
        await db.drop();
      }
    });
  });
