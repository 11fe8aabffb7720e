import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { renderOpenApi } from '../scripts/openapi.ts';
import { ACTIONS } from '../src/actions/index.ts';

describe('docs/openapi.json is generated from the action table, current, and valid OpenAPI 3.1', () => {
  const committed = readFileSync(new URL('../docs/openapi.json', import.meta.url), 'utf8');

  it('is exactly what `npm run docs` generates now', () => {
    assert.ok(committed === renderOpenApi(), 'docs/openapi.json is stale: run `npm run docs`');
  });

  it('validates against the OpenAPI 3.1 schema (@seriousme/openapi-schema-validator)', async () => {
    const validator = new Validator();
    const result = await validator.validate(JSON.parse(committed));
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    assert.equal(validator.version, '3.1');
    // The validator does refuse a broken document: a path without its leading slash.
    const broken = JSON.parse(committed);
    broken.paths = { CreateAccessToken: broken.paths['/?Action=CreateAccessToken'] };
    assert.equal((await new Validator().validate(broken)).valid, false);
  });

  it('describes every action with its declared parameters and response fields', () => {
    const doc = JSON.parse(committed);
    for (const a of ACTIONS) {
      const op = doc.paths[`/?Action=${a.name}`]?.post;
      assert.ok(op, a.name);
      const names = op.parameters.filter((p: { name?: string }) => p.name).map((p: { name: string }) => p.name);
      for (const param of Object.keys(a.params)) assert.ok(names.includes(param), `${a.name} documents ${param}`);
      const fields = Object.keys(op.responses['200'].content['application/json'].schema.allOf[1].properties);
      assert.deepEqual(fields, Object.keys(a.response.fields), a.name);
    }
  });
});
