import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';

import { sourceProof } from '../src/crypto/source-proof.ts';
import { v1Signature } from '../src/rpc/sign-v1.ts';
import { assertShell, runAgent, SHELL_AGENT, shell, shellSkip } from './helpers/shell-agent.ts';

const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');

/** mulberry32: a fixed seed, so a failure names a case that can be replayed. */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rnd = random(20190601);
const int = (n: number) => Math.floor(rnd() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const range = (from: number, to: number) => String.fromCodePoint(from + int(to - from + 1));

/** Pieces an awkward value is made of: everything percent-encoding and sorting can trip on. */
const PIECES: Array<() => string> = [
  () => range(0x20, 0x7e), // printable ASCII, space included
  () => pick(['*', '~', '!', "'", '(', ')', '+', '%', '=', '&', ' ', '-', '_', '.', '/', ':', '"', '\\', '$', '`']),
  () => range(0x4e00, 0x9fff), // CJK
  () => range(0x1f600, 0x1f64f), // emoji (4 UTF-8 bytes)
  () => '\u{1f468}\u200d\u{1f469}\u200d\u{1f467}', // a ZWJ sequence
  () => `e${range(0x0300, 0x036f)}`, // a combining mark
  () => pick(['\n', '\t', '\r\n', 'ä', 'ß', 'é', 'Ω', '€']),
  () => pick(['%20', '%2A', '%25', '+', '%']), // things that look already encoded
];

function awkward(maxPieces: number): string {
  let s = '';
  const n = 1 + int(maxPieces);
  for (let i = 0; i < n; i++) s += pick(PIECES)();
  return s;
}

/** Names: mostly what real requests send, plus prefixes of one another and non-ASCII ones. */
const NAMES = [
  'Action',
  'A',
  'AB',
  'A.1',
  'A.10',
  'A.2',
  'a',
  'Name',
  'Name.1',
  'DataDisk.1.Path',
  'DataDisk.10.Path',
  'Ä',
  'Zeta',
  'z~',
  'SystemInfo',
];

interface Case {
  secret: string;
  pairs: Array<[string, string]>;
}

function corpus(): Case[] {
  const cases: Case[] = [];
  // Each case costs a few processes (sort, awk, openssl), each value none: many values per case.
  for (let i = 0; i < 36; i++) {
    const names = new Set<string>();
    const count = 4 + int(12);
    while (names.size < count) names.add(rnd() < 0.6 ? pick(NAMES) : awkward(3));
    // Secrets of every length around the 64-byte HMAC block: secret + "&" longer than 64 is hashed first.
    const secretLength = pick([0, 1, 30, 32, 62, 63, 64, 65, 80]);
    const secret = i % 9 === 0 ? awkward(6) : Array.from({ length: secretLength }, () => pick([...'ABCabc0123456789xyzXYZ'])).join('');
    cases.push({ secret, pairs: [...names].map((n) => [n, rnd() < 0.1 ? '' : awkward(8)]) });
  }
  // Values ending in newlines, and one of each piece on its own.
  cases.push({ secret: 'k', pairs: [['Description', 'ends with newlines\n\n']] });
  cases.push({ secret: 'k', pairs: PIECES.map((p, i) => [`P${i}`, p()]) });
  return cases;
}

const CASES = corpus();
const VALUES = CASES.reduce((n, c) => n + c.pairs.length, 0);

describe('the shell agent signs exactly as the server verifies', () => {
  it(`the corpus has hundreds of awkward values (${VALUES})`, () => {
    assert.ok(VALUES >= 300, `${VALUES} values`);
    assert.ok(
      CASES.some((c) => Buffer.byteLength(`${c.secret}&`) > 64),
      'some keys exceed the HMAC block',
    );
  });

  it('declares its version once, as sh-<package version>, and the endpoint placeholder on one line', () => {
    const text = readFileSync(SHELL_AGENT, 'utf8');
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const versions = [...text.matchAll(/^agent_version='([^']*)'$/gm)];
    assert.equal(versions.length, 1);
    assert.equal(versions[0]![1], `sh-${pkg.version}`);
    assert.equal(text.split('__SMCD_PUBLIC_URL__').length - 1, 1, 'the server replaces every occurrence: only one may exist');
    assert.match(text, /^served_endpoint='__SMCD_PUBLIC_URL__'$/m);
  });
});

for (const name of ['dash', 'busybox', 'bash'] as const) {
  const sh = shell(name);
  describe(`signatures under ${name}`, shellSkip(sh), () => {
    before(() => assertShell(sh));

    it('V1 signatures of the whole corpus equal src/rpc/sign-v1.ts byte for byte', async () => {
      const input = CASES.map((c) => [`key:${hex(c.secret)}`, ...c.pairs.map(([k, v]) => `${hex(k)} ${hex(v)}`)].join('\n')).join('\n\n');
      const run = await runAgent(sh, ['__sign'], { stdin: `${input}\n` });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
      const got = run.stdout.split('\n').slice(0, -1);
      assert.equal(got.length, CASES.length);
      CASES.forEach((c, i) => {
        assert.equal(got[i], v1Signature('POST', c.pairs, c.secret), `case ${i}: ${JSON.stringify(c)}`);
      });
    });

    it('the ownership proof equals src/crypto/source-proof.ts', async () => {
      for (let i = 0; i < 6; i++) {
        const secret = i === 0 ? 'S'.repeat(70) : awkward(5);
        const machineId = i === 1 ? '' : awkward(4);
        const nonce = i === 2 ? 'ab\ncd' : Buffer.from(awkward(2)).toString('hex');
        const run = await runAgent(sh, ['__proof'], { stdin: `${hex(secret)}\n${hex(machineId)}\n${hex(nonce)}\n` });
        assert.equal(run.code, 0, run.stderr);
        assert.equal(run.stdout, `${sourceProof(secret, machineId, nonce)}\n`, JSON.stringify({ secret, machineId, nonce }));
      }
    });
  });
}
