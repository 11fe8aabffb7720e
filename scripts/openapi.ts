// docs/openapi.json: an OpenAPI 3.1 description of every action, generated from the action
// table (`npm run docs`). RPC operations share the path `/` and are told apart by Action, so
// each appears as the path `/?Action=<Name>`, with GET (parameters in the query) and POST
// (the same parameters, in the query or as a form body).
import { readFileSync } from 'node:fs';
import { ACTIONS } from '../src/actions/index.ts';
import { errors } from '../src/rpc/errors.ts';
import type { ParamDecl } from '../src/rpc/params.ts';
import type { Shape } from '../src/rpc/shapes.ts';

type Json = Record<string, unknown>;

const SIGNERS = {
  'access-key': 'an access key',
  'access-token': 'an activation code pair (AccessTokenId, AccessTokenCode)',
  'source-key': 'a source key',
};

function paramSchema(decl: ParamDecl): { schema?: Json; content?: Json } {
  switch (decl.kind) {
    case 'text':
      return { schema: { type: 'string', minLength: decl.min ?? 0, maxLength: decl.max } };
    case 'integer':
      return { schema: { type: 'integer', minimum: decl.min, maximum: decl.max, ...(decl.default !== undefined ? { default: decl.default } : {}) } };
    case 'enum':
      return { schema: { type: 'string', enum: [...decl.values] } };
    case 'list':
      return {
        content: {
          'application/json': {
            schema: {
              type: 'array',
              maxItems: decl.maxItems,
              items: { type: 'string', minLength: 1, maxLength: decl.itemMax, ...(decl.values ? { enum: [...decl.values] } : {}) },
            },
          },
        },
      };
    case 'json-object':
      return { content: { 'application/json': { schema: { type: 'object' } } } };
    case 'tags':
      return {
        content: {
          'application/json': {
            schema: {
              type: 'array',
              maxItems: 20,
              items: {
                type: 'object',
                required: ['Key'],
                properties: { Key: { type: 'string', minLength: 1, maxLength: 64 }, Value: { type: 'string', maxLength: 64 } },
              },
            },
          },
        },
      };
    case 'disks':
      return {
        content: {
          'application/json': {
            schema: {
              type: 'array',
              maxItems: decl.maxItems,
              items: { type: 'object', properties: { Index: { type: 'integer' }, Path: { type: 'string' }, Size: { type: 'integer' } } },
            },
          },
        },
      };
  }
}

function listForm(name: string, decl: ParamDecl): string {
  if (decl.kind === 'list') return ` Sent as ${name}.1, ${name}.2, ... or as a JSON array.`;
  if (decl.kind === 'disks') return ` Sent as ${name}.N.Index, ${name}.N.Path, ${name}.N.Size, or as a JSON array.`;
  if (decl.kind === 'tags') return ` Sent as ${name}.N.Key and ${name}.N.Value (N from 1 to 20), or as a JSON array.`;
  return '';
}

function schemaOf(shape: Shape): Json {
  switch (shape.kind) {
    case 'string':
      return { type: 'string', ...(shape.doc ? { description: shape.doc } : {}) };
    case 'integer':
      return { type: 'integer', ...(shape.doc ? { description: shape.doc } : {}) };
    case 'array':
      return { type: 'array', items: schemaOf(shape.item) };
    case 'object':
      return {
        type: 'object',
        properties: Object.fromEntries(Object.entries(shape.fields).map(([n, s]) => [n, schemaOf(s)])),
        required: Object.keys(shape.fields),
        ...(shape.doc ? { description: shape.doc } : {}),
      };
  }
}

export function renderOpenApi(): string {
  const version = String(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version);
  const errorCodes = [...new Set(Object.values(errors).map((make) => (make as (...a: string[]) => { code: string })('<Param>', '<rule>').code))];
  const common = ['Format', 'AccessKeyId', 'SignatureMethod', 'SignatureVersion', 'SignatureNonce', 'Timestamp', 'Signature'].map((name) => ({
    $ref: `#/components/parameters/${name}`,
  }));
  const paths: Json = {};
  for (const a of ACTIONS) {
    const parameters = [
      { name: 'Action', in: 'query', required: true, schema: { type: 'string', const: a.name } },
      { name: 'Version', in: 'query', required: true, schema: { type: 'string', const: '2019-06-01' } },
      ...common,
      ...Object.entries(a.params).map(([name, decl]) => ({
        name,
        in: 'query',
        required: Boolean(decl.required),
        description: decl.doc + listForm(name, decl),
        ...paramSchema(decl),
      })),
    ];
    const operation = (method: string) => ({
      operationId: method === 'get' ? a.name : `${a.name}Post`,
      summary: a.summary,
      description: `${a.origin === 'SMC' ? 'As in Alibaba Cloud SMC.' : 'An smcd operation, in SMC conventions.'} Signed with ${SIGNERS[a.signedBy]}.`,
      tags: [a.origin],
      parameters,
      responses: {
        200: {
          description: `${a.name}Response (XML with Format=XML).`,
          content: { 'application/json': { schema: { allOf: [{ $ref: '#/components/schemas/RequestId' }, schemaOf(a.response)] } } },
        },
        default: { description: 'An SMC error.', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    });
    paths[`/?Action=${a.name}`] = { get: operation('get'), post: operation('post') };
  }
  const doc = {
    openapi: '3.1.0',
    info: {
      title: 'smcd',
      version,
      summary: "Alibaba Cloud Server Migration Center's RPC API (2019-06-01), self-hosted.",
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: 'http://127.0.0.1:8080', description: 'smcd serve, by default' }],
    security: [{ signatureV1: [] }, { signatureV3: [] }],
    paths,
    components: {
      securitySchemes: {
        signatureV1: {
          type: 'apiKey',
          in: 'query',
          name: 'Signature',
          description: 'HMAC-SHA1 over the sorted, percent-encoded parameters (API.md section 2).',
        },
        signatureV3: {
          type: 'apiKey',
          in: 'header',
          name: 'Authorization',
          description: 'ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=...,Signature=<hex>.',
        },
      },
      parameters: {
        Format: { name: 'Format', in: 'query', schema: { type: 'string', enum: ['JSON', 'XML', 'json', 'xml'], default: 'JSON' } },
        AccessKeyId: { name: 'AccessKeyId', in: 'query', schema: { type: 'string' }, description: 'V1: the signing key id.' },
        SignatureMethod: { name: 'SignatureMethod', in: 'query', schema: { type: 'string', const: 'HMAC-SHA1' } },
        SignatureVersion: { name: 'SignatureVersion', in: 'query', schema: { type: 'string', const: '1.0' } },
        SignatureNonce: {
          name: 'SignatureNonce',
          in: 'query',
          schema: { type: 'string', maxLength: 256 },
          description: 'V1: unique per key within 30 minutes.',
        },
        Timestamp: { name: 'Timestamp', in: 'query', schema: { type: 'string' }, description: 'V1: UTC yyyy-MM-ddTHH:mm:ssZ, within 15 minutes.' },
        Signature: { name: 'Signature', in: 'query', schema: { type: 'string' }, description: 'V1: Base64 HMAC-SHA1.' },
      },
      schemas: {
        RequestId: {
          type: 'object',
          properties: { RequestId: { type: 'string', pattern: '^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$' } },
          required: ['RequestId'],
        },
        Error: {
          type: 'object',
          properties: {
            RequestId: { type: 'string' },
            HostId: { type: 'string' },
            Code: { type: 'string', examples: errorCodes, description: "See the README's error table; <Param> stands for a parameter name." },
            Message: { type: 'string' },
            Recommend: { type: 'string' },
          },
          required: ['RequestId', 'HostId', 'Code', 'Message', 'Recommend'],
        },
      },
    },
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
