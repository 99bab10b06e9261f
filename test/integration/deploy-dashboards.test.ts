import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gatewayInFrontOfStub } from '../support/gateway-start.js';

const run = promisify(execFile);
const RULES = 'deploy/prometheus/idemkit-alerts.yml';
const RULE_TESTS = 'deploy/prometheus/idemkit-alerts.test.yml';
const DASHBOARD = 'deploy/grafana/idemkit-gateway.json';

/** Every `idemkit_*` series name a PromQL expression reads. */
function metricNamesIn(expression: string): string[] {
  return [...expression.matchAll(/\bidemkit_[a-z0-9_]+/g)].map((m) => m[0]);
}

/** The series names a scrape exports: a histogram also exports its _bucket, _sum and _count. */
function exportedNames(scrape: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name as string);
    if (type === 'histogram')
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

function missing(expressions: string[], exported: Set<string>): string[] {
  return [...new Set(expressions.flatMap(metricNamesIn))].filter((name) => !exported.has(name));
}

function dashboardExpressions(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: { targets: { expr: string }[] }[];
    templating: { list: { query: string }[] };
  };
  return [
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
    ...dashboard.templating.list.map((v) => v.query),
  ];
}

function ruleExpressions(): string[] {
  // The rule file's `expr:` values, one line or a `|` block (no YAML parser needed for our own file).
  const text = readFileSync(RULES, 'utf8');
  const out: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const match = /^(\s*)expr: (.*)$/.exec(lines[i] as string);
    if (!match) continue;
    if (match[2] !== '|') {
      out.push(match[2] as string);
      continue;
    }
    const block: string[] = [];
    for (let j = i + 1; j < lines.length && /^\s{10,}\S/.test(lines[j] as string); j++)
      block.push(lines[j] as string);
    out.push(block.join('\n'));
  }
  return out;
}

describe('deploy/: the Grafana dashboard and the Prometheus alerts', () => {
  let scrape = '';

  before(async () => {
    // A real gateway in front of a real upstream; one keyed request makes the store histogram appear.
    const gateway = await gatewayInFrontOfStub();
    const headers = {
      'idempotency-key': 'k-1',
      authorization: 'Bearer ops',
      'content-type': 'application/json',
    };
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${gateway.url}/charges`, { method: 'POST', headers, body: '{}' });
      assert.equal(res.status, 201);
    }
    scrape = await (await fetch(`${gateway.adminUrl}/_idemkit/metrics`)).text();
  });

  it('every metric the dashboard and the alerts read is exported by /_idemkit/metrics', () => {
    const exported = exportedNames(scrape);
    assert.ok(exported.has('idemkit_store_latency_seconds_bucket'), 'the scrape carries the store histogram');
    const dashboard = dashboardExpressions();
    const rules = ruleExpressions();
    assert.ok(
      dashboard.length >= 10 && rules.length >= 7,
      `read ${dashboard.length} panel queries, ${rules.length} rules`,
    );
    assert.deepEqual(missing(dashboard, exported), []);
    assert.deepEqual(missing(rules, exported), []);
  });

  it('the check catches a name the gateway does not export (negative control)', () => {
    const exported = exportedNames(scrape);
    assert.deepEqual(missing(['rate(idemkit_replay_total[5m]) > 0', 'idemkit_executions_total'], exported), [
      'idemkit_replay_total',
    ]);
  });

  it('promtool accepts the rules and their unit tests pass', async () => {
    // promtool comes from Debian's prometheus package, which .ci/run installs: missing is a failure.
    const check = await run('promtool', ['check', 'rules', RULES]);
    assert.match(check.stdout + check.stderr, /SUCCESS: \d+ rules found/);
    const tests = await run('promtool', ['test', 'rules', RULE_TESTS]);
    assert.match(tests.stdout + tests.stderr, /SUCCESS/);
  });
});
