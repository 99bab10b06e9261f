import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { validate } from '@readme/openapi-parser';
import { runCli } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'idemkit-openapi-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const api = {
  openapi: '3.0.3',
  info: { title: 'shop', version: '1' },
  paths: {
    '/charges': { post: { responses: { '201': { description: 'created' } } } },
    '/refunds': { post: { responses: { '201': { description: 'created' } } } },
  },
};
const apiFile = join(dir, 'api.json');
writeFileSync(apiFile, JSON.stringify(api));

type Doc = {
  paths: Record<string, { post: { parameters?: unknown[] } }>;
  components: Record<string, object>;
};

describe('idemkit openapi', () => {
  it('prints the components as a valid OpenAPI 3.1 document', async () => {
    const result = await runCli(['openapi']);
    assert.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout);
    assert.equal((await validate(document)).valid, true);
    assert.ok(document.components.parameters.IdempotencyKey);
  });

  it('adds the key to the operations given by --routes, written to --out', async () => {
    const out = join(dir, 'out.json');
    const result = await runCli(['openapi', '--in', apiFile, '--routes', 'POST /charges', '--out', out]);
    assert.equal(result.code, 0, result.stderr);
    const document = JSON.parse(readFileSync(out, 'utf8')) as Doc;
    assert.equal((await validate(structuredClone(document) as never)).valid, true);
    assert.equal(document.paths['/charges']?.post.parameters?.length, 1);
    assert.equal(document.paths['/refunds']?.post.parameters, undefined);
  });

  it("takes the covered operations from a gateway config file's routes", async () => {
    const config = join(dir, 'idemkit.json');
    writeFileSync(config, JSON.stringify({ routes: [{ path: '/refunds', methods: ['POST'] }] }));
    const result = await runCli(['openapi', '--in', apiFile, '--config', config]);
    assert.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout) as Doc;
    assert.equal(document.paths['/refunds']?.post.parameters?.length, 1);
    assert.equal(document.paths['/charges']?.post.parameters, undefined);
  });

  it('exits 2 with a clear message for a missing file, a non-JSON file and a Swagger 2 document', async () => {
    const notJson = join(dir, 'api.yaml');
    writeFileSync(notJson, 'openapi: 3.0.0\n');
    const swagger = join(dir, 'swagger.json');
    writeFileSync(swagger, JSON.stringify({ swagger: '2.0', paths: {} }));
    const cases: [string[], RegExp][] = [
      [['openapi', '--in', join(dir, 'nope.json')], /cannot read .*nope\.json: ENOENT/],
      [['openapi', '--in', notJson], /is not JSON .*convert YAML/],
      [['openapi', '--in', swagger], /not OpenAPI 3/],
      [['openapi', '--routes', 'POST /x'], /add --in/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    }
  });
});
