#!/usr/bin/env node
// `npm test`: every test/**/*.test.ts through Node's test runner. Node 20 does not
// expand globs or find .ts files in a directory itself, so the files are listed here.
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

const only = process.argv.slice(2);
const files = only.length > 0 ? only : find('test').sort();
console.log(`running ${files.length} test files`);
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=240000', ...files],
  { stdio: 'inherit', env: { ...process.env, SMCD_LOG_LEVEL: process.env.SMCD_LOG_LEVEL ?? 'silent' } },
);
process.exit(result.status ?? 1);
