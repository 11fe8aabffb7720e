import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ACTIONS } from '../src/actions/index.ts';
import { rawHttp } from './helpers/raw-http.ts';
import { startTestServer, type TestServer, tempDir } from './helpers/server.ts';
import { callV1, encodeForm, REQUEST_ID, v1Params } from './helpers/sign.ts';
import { openTestDatabase, STORE_KINDS, storeSkipReason } from './helpers/stores.ts';

/** Seeded PRNG (mulberry32) so a failure can be replayed with the printed seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'FOO', 'POST', 'GET'];
const CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'application/json',
  'text/plain',
  'multipart/form-data; boundary=z',
  '',
  'application/x-www-form-urlencoded; charset=latin1',
];
const ATOMS = [
  '%',
  '%Z',
  '%zz',
  '%C3%28',
  '%FF',
  '%E4%B8',
  '&&',
  '==',
  '=',
  '+',
  '%00',
  '\u00ff',
  'Action=ListAccessTokens',
  'Version=2019-06-01',
  'Version=1',
  'Format=XML',
  'Format=yaml',
  'Action=CreateAccessToken',
  'AccessKeyId=LTAI',
  'Signature=x',
  'Timestamp=now',
  'SignatureNonce=1',
  'SignatureMethod=HMAC-SHA1',
  'a=1&a=2',
  'Action=Action',
];

function junk(r: ReturnType<typeof prng>, max: number): string {
  let s = '';
  const n = r.int(max);
  for (let i = 0; i < n; i++) s += r.next() < 0.5 ? r.pick(ATOMS) : String.fromCharCode(33 + r.int(94));
  return s.replace(/[ \r\n#]/g, '');
}

function garbageValue(r: ReturnType<typeof prng>): string {
  return r.pick([
    '',
    '-1',
    '0',
    '1e309',
    '99999999999999999999',
    'NaN',
    '{"a":',
    '[]',
    'null',
    'x'.repeat(r.int(5000)),
    '中'.repeat(r.int(300)),
    'http://evil',
    '\u0000\u0001',
    '\ud83d\ude00'.repeat(r.int(200)),
    '10.0.0.0/99',
    '1.5',
  ]);
}

function buildRequest(r: ReturnType<typeof prng>, root: { id: string; secret: string }): string | Buffer {
  const kind = r.int(4);
  const method = r.pick(METHODS);
  if (kind === 0) {
    // Junk query, maybe a junk body with a random content type.
    const body = r.next() < 0.5 ? junk(r, 30) : '';
    const type = r.pick(CONTENT_TYPES);
    return `${method} /?${junk(r, 40)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${type ? `Content-Type: ${type}\r\n` : ''}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  }
  if (kind === 1) {
    // Invalid UTF-8 bytes raw in the target or the body.
    const bad = Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0x80].slice(0, 1 + r.int(5)));
    const head = Buffer.from(`${r.pick(['GET', 'POST'])} /?Action=ListAccessTokens&Name=`);
    return Buffer.concat([
      head,
      bad,
      Buffer.from(` HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\nA=`),
      bad.subarray(0, 1),
    ]);
  }
  if (kind === 2) {
    // Repeated and huge parameters.
    const big = 'v'.repeat(r.pick([10, 1000, 15_000, 17_000, 70_000]));
    const q = r.next() < 0.5 ? `Action=ListAccessTokens&Name=${big}` : `Action=ListAccessTokens&Name=a&Name=b&${junk(r, 5)}`;
    return r.next() < 0.5
      ? `GET /?${q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`
      : `POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${q.length}\r\n\r\n${q}`;
  }
  // Garbage parameters under a valid signature, for a random action.
  const action = r.pick(ACTIONS);
  const params: Record<string, string> = {};
  for (const [declared, decl] of Object.entries(action.params)) {
    if (r.next() < 0.6) continue;
    const name =
      decl.kind === 'list'
        ? `${declared}.${r.pick(['1', '0', 'x', '99999'])}`
        : decl.kind === 'disks'
          ? `${declared}.${r.int(3)}.${r.pick(['Index', 'Path', 'Size', 'Zzz'])}`
          : declared;
    params[name] = garbageValue(r);
  }
  if (r.next() < 0.2) params[junk(r, 6) || 'Extra'] = garbageValue(r);
  const signed = v1Params(root, action.name, params, { method: 'POST' });
  const body = encodeForm(signed);
  return `POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** Reads an XML SMC error, for requests that asked for Format=XML. */
function xmlError(body: string): { RequestId: string; Code: string; Message: string } | undefined {
  const m =
    /^<\?xml version="1.0" encoding="UTF-8"\?><Error><RequestId>([^<]+)<\/RequestId><HostId>[^<]*<\/HostId><Code>([^<]+)<\/Code><Message>([^<]*)<\/Message>/.exec(
      body,
    );
  return m ? { RequestId: m[1]!, Code: m[2]!, Message: m[3]! } : undefined;
}

for (const kind of STORE_KINDS)
  describe(`thousands of hostile requests: no 5xx but 503, every answer a well-formed SMC error, server healthy after (${kind})`, {
    skip: await storeSkipReason(kind),
  }, () => {
    let s: TestServer;
    let db: { url: string; drop(): Promise<void> };
    const dir = tempDir();
    before(async () => {
      db = await openTestDatabase(kind, dir);
      s = await startTestServer({ dir, database: db.url, authFailureLimit: 1_000_000 });
    });
    after(async () => {
      await s.close();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('3,000 generated requests', async () => {
      const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
      const r = prng(seed);
      const statuses = new Map<number, number>();
      let answered = 0;
      for (let batch = 0; batch < 150; batch++) {
        const requests = Array.from({ length: 20 }, () => buildRequest(r, s.root));
        const responses = await Promise.all(requests.map((req) => rawHttp(s.port, req)));
        responses.forEach((res, i) => {
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          const where = `seed ${seed}, request: ${String(requests[i]).slice(0, 3000)}`;
          assert.ok(res.status < 500 || res.status === 503, `status ${res.status} for ${where}\n${res.body.slice(0, 500)}`);
          if (res.status === 200) return;
          const error = res.json ?? xmlError(res.body);
          assert.ok(error, `not an SMC error for ${where}: ${res.body.slice(0, 200)}`);
          assert.match(error.RequestId, REQUEST_ID);
          assert.equal(typeof error.Code, 'string');
          assert.equal(typeof error.Message, 'string');
          assert.ok(!/\bat .+:\d+:\d+\)?/.test(res.body), `stack trace leaked for ${where}`);
          answered++;
        });
      }
      assert.ok(answered > 2000, `errors answered: ${answered}`);
      assert.ok((statuses.get(400) ?? 0) > 100);
      // Healthy afterwards.
      const health = await fetch(`${s.url}/healthz`);
      assert.equal(health.status, 200);
      assert.equal((await callV1(s.url, s.root, 'ListAccessTokens')).status, 200);
      const internal = s.logs.filter((l) => l.includes('"internal error"'));
      assert.deepEqual(internal, [], 'no request ended in an internal error');
      console.log(`${kind}: seed ${seed}, 3000 requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    });
  });
