import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { renderApiReference } from '../scripts/api-reference.ts';

describe('README.md stays in step with the action table', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

  it('begins with the two set-up commands', () => {
    assert.match(readme, /^# smcd\n\n```\nnpm install && npm start\nnpm test\n```\n/);
  });

  it('holds the API reference exactly as generated from src/actions and the error registry (run `npm run docs`)', () => {
    assert.ok(readme.includes(renderApiReference()), 'README.md API reference is stale: run `npm run docs`');
  });
});
