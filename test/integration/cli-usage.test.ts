import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runCli } from '../support/cli.js';

/*
 * The CLI's front door, through the real entry point: help everywhere, and every bad flag, bad
 * variable and bad config file ends with a message on stderr that says what to fix, and exit 2.
 */

const dir = mkdtempSync(join(tmpdir(), 'idemkit-cli-usage-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

async function usageError(args: string[], pattern: RegExp, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const { code, stdout, stderr } = await runCli(args, env);
  assert.equal(code, 2, `exit code of idemkit ${args.join(' ')}; stderr: ${stderr}`);
  assert.match(stderr, pattern);
  assert.equal(stdout, '');
}

describe('idemkit --help', () => {
  it('lists every command and points newcomers at the demo', async () => {
    const { code, stdout } = await runCli(['--help']);

    assert.equal(code, 0);
    for (const command of ['demo', 'gateway', 'inspect', 'purge', 'migrate'])
      assert.match(stdout, new RegExp(`\\n  ${command} `));
    assert.match(stdout, /Start with `idemkit demo`/);
  });

  it('every command has its own help, with its flags and an example', async () => {
    const expected: Record<string, RegExp[]> = {
      demo: [
        /--operations <n>/,
        /--concurrency <n>/,
        /--fault-rate <p>/,
        /--duration <d>/,
        /Exit code 1 if any charge/,
      ],
      gateway: [
        /--upstream <url>/,
        /--store <url>/,
        /--config <file>/,
        /--lease <duration>/,
        /IDEMKIT_MAX_BODY/,
        /IDEMKIT_SECRET/,
        /--principal-cookie <name>/,
        /--jwt-jwks <file\|url>/,
        /--allow-anonymous/,
        /--key-body-field <field>/,
        /IDEMKIT_JWT_SECRET/,
      ],
      inspect: [/--principal-hash <hash>/, /--store-key <hash>/, /--body/, /Example:/],
      purge: [/--expired/, /--key <key>/, /Examples:/],
      migrate: [/--store <url>/, /postgres:\/\//],
    };
    const results = await Promise.all(Object.keys(expected).map((command) => runCli([command, '--help'])));

    Object.values(expected).forEach((patterns, i) => {
      const { code, stdout } = results[i] as { code: number; stdout: string };
      assert.equal(code, 0);
      for (const pattern of patterns) assert.match(stdout, pattern);
    });
  });

  it('--version prints the package version', async () => {
    const { code, stdout } = await runCli(['--version']);

    assert.equal(code, 0);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  });
});

// Independent child processes: four at a time keeps the file quick on two cores.
describe('usage errors exit with 2 and say what to do', { concurrency: 4 }, () => {
  it('an unknown command suggests the right one', () =>
    usageError(['gatway'], /unknown command 'gatway'\n\(Did you mean gateway\?\)/));

  it('no command at all shows the help', () => usageError([], /Usage: idemkit/));

  it('an unknown flag', () =>
    usageError(
      ['gateway', '--upstrem', 'http://x'],
      /unknown option '--upstrem'\n\(Did you mean --upstream\?\)/,
    ));

  it('a flag without its value', () =>
    usageError(['gateway', '--upstream'], /option '--upstream <url>' argument missing/));

  it('gateway without an upstream', () =>
    usageError(['gateway'], /error: no upstream: pass --upstream http:\/\/127\.0\.0\.1:8080/));

  it('a duration without a unit', () =>
    usageError(
      ['gateway', '--upstream', 'http://127.0.0.1:1', '--lease', '30'],
      /--lease: "30" is not a duration \(add a unit/,
    ));

  it('a bad IDEMKIT_* variable names the variable', () =>
    usageError(['gateway', '--upstream', 'http://127.0.0.1:1'], /IDEMKIT_PORT: "http" is not a port/, {
      IDEMKIT_PORT: 'http',
    }));

  it('a config file with an unknown key names the file and the key', async () => {
    const file = configFile('typo.json', { upstream: 'http://127.0.0.1:1', retention: 1000 });

    await usageError(
      ['gateway', '--config', file],
      /config file .*typo\.json: unknown key "retention" \(did you mean "retentionMs"\?\)/,
    );
  });

  it('a config file that is not JSON', async () => {
    const file = configFile('broken.json', '{ "upstream": ');

    await usageError(['gateway', '--config', file], /config file .*broken\.json is not valid JSON/);
  });

  it('a config file that does not exist', () =>
    usageError(
      ['gateway', '--config', join(dir, 'nope.json')],
      /--config: cannot read config file .*nope\.json \(no such file\); check the path/,
    ));

  it('a route without a leading slash', async () => {
    const file = configFile('route.json', { upstream: 'http://127.0.0.1:1', routes: [{ path: 'charges' }] });

    await usageError(['gateway', '--config', file], /routes\[0\]\.path: "charges" must start with \//);
  });

  it('two principal sources at once', () =>
    usageError(
      ['gateway', '--upstream', 'http://127.0.0.1:1', '--principal-cookie', 'sid'],
      /--principal-cookie and IDEMKIT_JWT_SECRET each choose where the principal comes from; keep one/,
      { IDEMKIT_JWT_SECRET: 'j'.repeat(32) },
    ));

  it('the removed --require-principal, and a JWT secret on the command line', async () => {
    await usageError(
      ['gateway', '--upstream', 'http://127.0.0.1:1', '--require-principal'],
      /unknown option '--require-principal'/,
    );
    await usageError(
      ['gateway', '--upstream', 'http://127.0.0.1:1', '--jwt-secret', 'x'],
      /unknown option '--jwt-secret'/,
    );
  });

  it('a JWKS file that does not exist stops the gateway before it listens', () =>
    usageError(
      [
        'gateway',
        '--upstream',
        'http://127.0.0.1:1',
        '--store',
        'memory:',
        '--jwt-jwks',
        join(dir, 'no-keys.json'),
      ],
      /--jwt-jwks: cannot read the JWKS file .*no-keys\.json \(no such file\); check the path/,
    ));

  it('a shared store without IDEMKIT_SECRET', () =>
    usageError(
      ['gateway', '--upstream', 'http://127.0.0.1:1', '--store', 'redis://127.0.0.1:6379'],
      /set IDEMKIT_SECRET/,
    ));

  it('an unsupported store URL', () =>
    usageError(
      ['inspect', '--store', 'mysql://db', '--path', '/a', '--key', 'k'],
      /--store: "mysql:\/\/db" is not a store URL/,
    ));

  it('inspect without the record it should show', () =>
    usageError(['inspect', '--path', '/charges'], /name the record: --path \/charges --key K/));

  it('inspect with both --principal and --principal-hash', () =>
    usageError(
      ['inspect', '--principal', 'a', '--principal-hash', 'b', '--path', '/a', '--key', 'k'],
      /option '--principal <value>' cannot be used with option '--principal-hash <hash>'/,
    ));

  it('inspect with a key the engine would refuse', () =>
    usageError(['inspect', '--path', '/a', '--key', 'a,b'], /--key: a bare key may not contain/));

  it('inspect with a query in the path', () =>
    usageError(['inspect', '--path', '/a?b=1', '--key', 'k'], /must start with \/ and have no query/));

  it('inspect and purge on a SQLite file that does not exist, without creating it', async () => {
    const missing = join(dir, 'never-written.db');

    await usageError(
      ['inspect', '--store', `sqlite:${missing}`, '--path', '/a', '--key', 'k'],
      /no SQLite store at .*never-written\.db: pass the gateway's --store/,
    );
    await usageError(['purge', '--expired'], /no SQLite store at .*never-written\.db/, {
      IDEMKIT_STORE: `sqlite:${missing}`,
    });
    assert.equal(existsSync(missing), false);
  });

  it('purge without --expired or a record', () =>
    usageError(['purge'], /pass --expired, or name one record with --path and --key/));

  it('purge with --expired and a record', () =>
    usageError(
      ['purge', '--expired', '--path', '/a', '--key', 'k'],
      /--expired deletes every expired record; leave out --path/,
    ));

  it('migrate on a store that has no schema', () =>
    usageError(
      ['migrate', '--store', 'redis://127.0.0.1:6379'],
      /redis keeps no schema, so there is nothing to migrate/,
    ));

  it('demo with a fault rate out of range, or a count of zero', async () => {
    await usageError(['demo', '--fault-rate', '1.5'], /--fault-rate "1\.5": use a share from 0 to 0\.9/);
    await usageError(['demo', '--operations', '0'], /--operations "0": use a whole number from 1/);
    await usageError(['demo', '--duration', '10'], /--duration: "10" is not a duration/);
  });
});
