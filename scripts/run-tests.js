#!/usr/bin/env node
// `npm test`: builds dist/ (the tests start `smcd` processes from it), checks formatting, lint
// and types, then runs every test/**/*.test.ts through Node's test runner. Node 20 does not
// expand globs or find .ts files in a directory itself, so the files are listed here.
// `node scripts/run-tests.js test/some.test.ts` runs one file (after the build, without the checks).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'helpers' || e.name === 'fixtures' ? [] : find(p);
    return e.name.endsWith('.test.ts') ? [p] : [];
  });
}

function step(label, command, args) {
  const started = Date.now();
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`npm test: ${label} failed (${command} ${args.join(' ')})`);
    process.exit(result.status ?? 1);
  }
  console.log(`${label}: ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

const bin = (name) => join('node_modules', '.bin', name);
const only = process.argv.slice(2);
step('build', bin('tsc'), ['-p', 'tsconfig.build.json']);
if (only.length === 0) {
  step('typecheck', bin('tsc'), ['--noEmit']);
  step('lint', bin('biome'), ['check', '--error-on-warnings', '.']);
}
const files = only.length > 0 ? only : find('test').sort();
console.log(`running ${files.length} test files`);
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=240000', ...files], {
  stdio: 'inherit',
  env: { ...process.env, SMCD_LOG_LEVEL: process.env.SMCD_LOG_LEVEL ?? 'silent' },
});
process.exit(result.status ?? 1);
