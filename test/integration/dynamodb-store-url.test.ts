import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/gateway/config-error.js';
import { parseStoreUrl } from '../../src/gateway/store-url.js';
import { runCli, startCli } from '../support/cli.js';
import { type InProcessDynalite, startDynalite } from '../support/dynalite.js';

/*
 * `dynamodb://TABLE?region=…&endpoint=…` for the gateway and `idemkit migrate`, run as an
 * operator runs them (child processes) against dynalite. The SDK takes its credentials from the
 * environment here: static dummy values, so nothing is read from ~/.aws.
 */

const AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'idemkit-test',
  AWS_SECRET_ACCESS_KEY: 'idemkit-test',
  AWS_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
};

describe('dynamodb:// store URLs', () => {
  it('parse the table, region, endpoint and skew margin, and refuse what they cannot use', () => {
    assert.deepEqual(
      parseStoreUrl(
        'dynamodb://Idem.kit_records?region=eu-west-1&endpoint=http://127.0.0.1:8000&clockSkewMs=50',
      ),
      {
        kind: 'dynamodb',
        table: 'Idem.kit_records',
        region: 'eu-west-1',
        endpoint: 'http://127.0.0.1:8000',
        clockSkewMs: 50,
      },
    );
    assert.deepEqual(parseStoreUrl('dynamodb://idemkit'), { kind: 'dynamodb', table: 'idemkit' });
    for (const bad of [
      'dynamodb://',
      'dynamodb://ab',
      'dynamodb://a b c',
      'dynamodb://idemkit?size=1',
      'dynamodb://idemkit?endpoint=ftp://x',
      'dynamodb://idemkit?clockSkewMs=-5',
    ]) {
      assert.throws(() => parseStoreUrl(bad), ConfigError, bad);
    }
  });
});

describe('idemkit migrate and gateway on dynamodb://', () => {
  let dynalite: InProcessDynalite;
  let upstream: Server;
  let upstreamUrl: string;
  let executions = 0;

  before(async () => {
    dynalite = await startDynalite();
    upstream = createServer((req, res) => {
      executions++;
      req.resume().on('end', () => {
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'ch_1', n: executions }));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    await dynalite.close();
  });

  it('migrate creates the table (twice is fine); the gateway serves and replays on it', async () => {
    const url = `dynamodb://gw-${randomBytes(4).toString('hex')}?endpoint=${dynalite.endpoint}`;
    const first = await runCli(['migrate', '--store', url], AWS_ENV);
    const second = await runCli(['migrate'], { ...AWS_ENV, IDEMKIT_STORE: url });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(second.code, 0, second.stderr);
    assert.match(first.stdout, /table ready in dynamodb:\/\/gw-/);

    const gateway = startCli(['gateway', '--upstream', upstreamUrl, '--port', '0', '--admin-port', '0'], {
      ...AWS_ENV,
      IDEMKIT_STORE: url,
      IDEMKIT_SECRET: randomBytes(32).toString('base64url'),
    });
    try {
      const { url: base } = await gateway.waitForLog('idemkit gateway listening');
      const post = () =>
        fetch(`${base as string}/charges`, {
          method: 'POST',
          headers: {
            authorization: 'Bearer sk_1',
            'idempotency-key': 'k-1',
            'content-type': 'application/json',
          },
          body: '{"amount":1}',
        });

      const answer = await post();
      const retry = await post();
      gateway.child.kill('SIGTERM');

      assert.equal(answer.status, 201, await answer.text());
      assert.equal(retry.headers.get('idempotent-replayed'), 'true');
      assert.equal(executions, 1);
      assert.equal(await gateway.exited, 0);
    } finally {
      gateway.child.kill('SIGKILL');
    }
  });

  it('the gateway refuses dynamodb:// without IDEMKIT_SECRET', async () => {
    const { code, stderr } = await runCli(
      ['gateway', '--upstream', upstreamUrl, '--port', '0', '--store', 'dynamodb://idemkit'],
      AWS_ENV,
    );
    assert.equal(code, 2);
    assert.match(stderr, /IDEMKIT_SECRET/);
  });
});
