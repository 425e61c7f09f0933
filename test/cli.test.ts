import { hostname } from 'node:os';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync, cpSync, mkdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { assistdEnv, cleanUpCliProcesses, CliProcess, LISTENING, listening, WAIT_MS } from './helpers/cli.js';
import { http } from './helpers/server.js';
import { MIGRATION_LOCK_KEY } from '../src/storage/migrations.js';
import { preparedDataDir, tempDir } from './helpers/storage.js';

const MASTER_KEY = `sk-cli-master-${randomBytes(8).toString('hex')}`;
const UPSTREAM_KEY = `sk-upstream-${randomBytes(8).toString('hex')}`;
const ANTHROPIC_KEY = `sk-ant-${randomBytes(8).toString('hex')}`;

// ---------------------------------------------------------------------------------------------
// child process plumbing

const cleanupPaths: string[] = [];

after(async () => {
  await cleanUpCliProcesses();
  for (const path of cleanupPaths) rmSync(path, { recursive: true, force: true });
});

function scratchDir(label: string): string {
  const dir = tempDir(`cli-${label}`);
  cleanupPaths.push(dir);
  return dir;
}

async function dataDir(): Promise<string> {
  const dir = await preparedDataDir();
  cleanupPaths.push(dir);
  return dir;
}

interface Serving {
  cli: CliProcess;
  url: string;
  shownHost: string;
  port: number;
  boundTo: string;
  scope: string | undefined;
}

/**
 * Starts `assistd serve ...` and waits for the whole banner (`models` is how many deployments the config routes),
 * then for an answer to GET /health. The CLI installs its SIGTERM/SIGINT handlers synchronously after printing the
 * banner, so only once it has answered a request is it certain that a signal reaches them.
 */
async function serve(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; models?: number } = {},
): Promise<Serving> {
  const cli = new CliProcess(['serve', '--port', '0', ...args], options);
  const match = await cli.waitFor(LISTENING);
  await cli.waitFor(/^assistd: storage: .*$/m);
  const models = options.models ?? 0;
  if (models === 0) await cli.waitFor(/^assistd: models: none configured.*$/m);
  else await cli.waitFor(new RegExp(`(^assistd: model: .*\\n[^]*){${models}}`, 'm'));
  const parts = listening(match);
  const health = await call(parts.url, 'GET', '/health');
  assert.equal(health.status, 200, `GET /health: ${JSON.stringify(health.json)}\n${cli.describe()}`);
  return { cli, ...parts };
}

/** The process stopped cleanly after a signal: exit code 0 and the `stopped` line. */
async function assertStopped(cli: CliProcess) {
  const exit = await cli.exit;
  assert.deepEqual(exit, { code: 0, signal: null }, cli.describe());
  assert.match(cli.stdout, /^assistd: stopped$/m);
}

/** A request to the CLI's server, with the key (when given) as a bearer token; `json` is the body's text when it is not JSON. */
async function call(
  url: string,
  method: string,
  path: string,
  options: { key?: string; body?: unknown } = {},
): Promise<{ status: number; json: any }> {
  const response = await http({ url, apiKey: options.key ?? '' }, method, path, {
    body: options.body,
    auth: Boolean(options.key),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  return { status: response.status, json: response.json === undefined ? response.text : response.json };
}

async function createThread(url: string, key: string | undefined, tag: string): Promise<string> {
  const response = await call(url, 'POST', '/v1/threads', { key, body: { metadata: { tag } } });
  assert.equal(response.status, 200, JSON.stringify(response.json));
  assert.match(response.json.id, /^thread_/);
  return response.json.id as string;
}

async function assertThread(url: string, key: string | undefined, id: string, tag: string) {
  const response = await call(url, 'GET', `/v1/threads/${id}`, { key });
  assert.equal(response.status, 200, JSON.stringify(response.json));
  assert.equal(response.json.id, id);
  assert.deepEqual(response.json.metadata, { tag });
}

function writeFile(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function assertNoSecrets(cli: CliProcess, ...secrets: string[]) {
  for (const secret of secrets) {
    assert.ok(!cli.stdout.includes(secret), `stdout leaks a secret:\n${cli.stdout}`);
    assert.ok(!cli.stderr.includes(secret), `stderr leaks a secret:\n${cli.stderr}`);
  }
}

function warningLines(cli: CliProcess): string[] {
  return cli.stderr.split('\n').filter((line) => line.includes('warning'));
}

/** An IPv4 address of this machine that is not loopback, if there is one. */
function externalAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  return undefined;
}

async function reachable(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/health`, { signal: AbortSignal.timeout(5_000) });
    return true;
  } catch {
    return false;
  }
}

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const result = spawnSync(process.execPath, ['-e', '']);
  assert.equal(result.status, 0);
  return result.pid;
}

// ---------------------------------------------------------------------------------------------

// The suites are independent (own data dirs, port 0), so two run at once to keep the file quick.
describe('assistd serve (the real CLI in a child process)', { concurrency: 2 }, () => {
  describe('assistd serve: start-up banner and binding', () => {
    test('with a config file: prints where it listens, the storage and every routed model; master key binds 0.0.0.0', async () => {
      const dir = await dataDir();
      const config = writeFile(
        scratchDir('config'),
        'config.yaml',
        `model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: http://127.0.0.1:9/v1
      api_key: os.environ/UPSTREAM_KEY
  - model_name: llama
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3.1-8B-Instruct
      api_base: http://127.0.0.1:8000/v1
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-sonnet
      api_key: os.environ/UPSTREAM_KEY
  - model_name: palm
    litellm_params:
      model: sagemaker/palm-2
general_settings:
  master_key: os.environ/CLI_MK
  `,
      );
      const server = await serve(['--config', config, '--data-dir', dir], {
        env: assistdEnv({ UPSTREAM_KEY, CLI_MK: MASTER_KEY, ANTHROPIC_API_KEY: ANTHROPIC_KEY }),
        models: 3,
      });
      const { cli } = server;
      try {
        assert.equal(server.boundTo, '0.0.0.0');
        assert.equal(server.scope, 'every network interface');
        assert.equal(server.shownHost, '127.0.0.1');
        assert.ok(server.port > 0);
        assert.match(cli.stdout, new RegExp(`^assistd: storage: embedded PGlite in ${escape(dir)}$`, 'm'));
        assert.match(cli.stdout, /^assistd: model: gpt-4o -> openai\/gpt-4o at http:\/\/127\.0\.0\.1:9\/v1$/m);
        assert.match(cli.stdout, /^assistd: model: llama -> hosted_vllm\/meta-llama\/Llama-3.1-8B-Instruct at http:\/\/127\.0\.0\.1:8000\/v1$/m);
        assert.match(cli.stdout, /^assistd: model: claude -> anthropic\/claude-3-5-sonnet at https:\/\/api\.anthropic\.com\/v1$/m);
        // A provider that is not served is named in a warning, not silently routed.
        assert.match(cli.stderr, /model_list\[3\] \(palm\): provider 'sagemaker' is not supported/);
        assert.doesNotMatch(cli.stdout, /models: none configured/);
        // Prefixed names with no model_list entry: by the provider's environment key, and Ollama with none.
        assert.match(cli.stdout, /^assistd: models by provider prefix, with no model_list entry: ollama\/ \(no key, http:\/\/127\.0\.0\.1:11434\/\), anthropic\/ \(ANTHROPIC_API_KEY\)$/m);
        assert.deepEqual(
          warningLines(cli),
          [warningLines(cli).find((line) => line.startsWith("assistd: warning: model_list[3] (palm): provider 'sagemaker' is not supported (supported: openai, azure,")) ?? 'missing'],
          'with a master key and only known keys, the one warning is the unsupported provider',
        );

        const health = await call(server.url, 'GET', '/health');
        assert.equal(health.status, 200);
        assert.deepEqual(health.json, { status: 'ok', storage: 'pglite' });
        assert.equal((await call(server.url, 'POST', '/v1/threads', { body: {} })).status, 401);
        assert.equal((await call(server.url, 'POST', '/v1/threads', { key: 'sk-wrong', body: {} })).status, 401);
        await createThread(server.url, MASTER_KEY, 'banner');

        const external = externalAddress();
        if (external) assert.ok(await reachable(`http://${external}:${server.port}`), 'bound to 0.0.0.0: reachable on ' + external);
      } finally {
        await cli.stop();
      }
      await assertStopped(cli);
      assertNoSecrets(cli, MASTER_KEY, UPSTREAM_KEY, ANTHROPIC_KEY);
    });

    test('without a master key: warns, and binds 127.0.0.1 when --host is not given', async () => {
      const dir = await dataDir();
      const { cli, url, boundTo, shownHost, port } = await serve(['--data-dir', dir]);
      try {
        assert.equal(boundTo, '127.0.0.1');
        assert.equal(shownHost, '127.0.0.1');
        const warnings = warningLines(cli);
        assert.equal(warnings.length, 1, cli.describe());
        assert.match(warnings[0]!, /^assistd: warning: no master key is set.*127\.0\.0\.1/);
        assert.match(cli.stdout, /^assistd: models: none configured/m);
        // open API: no key needed
        await createThread(url, undefined, 'open');
        const external = externalAddress();
        if (external) assert.equal(await reachable(`http://${external}:${port}`), false, 'must not be reachable on ' + external);
      } finally {
        await cli.stop();
      }
      await assertStopped(cli);
    });

    test('without a master key, an explicit --host is honoured (and named in the warning)', async () => {
      const dir = await dataDir();
      const { cli, url, boundTo } = await serve(['--data-dir', dir, '--host', '0.0.0.0']);
      try {
        assert.equal(boundTo, '0.0.0.0');
        const warnings = warningLines(cli);
        assert.equal(warnings.length, 1, cli.describe());
        assert.match(warnings[0]!, /no master key.*0\.0\.0\.0/);
        assert.equal((await call(url, 'GET', '/health')).status, 200);
      } finally {
        await cli.stop();
      }
      await assertStopped(cli);
    });

    test('a master key from ASSISTD_MASTER_KEY binds 0.0.0.0 by default and is never printed, even with request logging', async () => {
      const dir = await dataDir();
      const { cli, url, boundTo } = await serve(['--data-dir', dir], {
        env: assistdEnv({ ASSISTD_MASTER_KEY: MASTER_KEY, ASSISTD_LOG_LEVEL: 'debug' }),
      });
      try {
        assert.equal(boundTo, '0.0.0.0');
        assert.deepEqual(warningLines(cli), []);
        const id = await createThread(url, MASTER_KEY, 'env-key');
        await assertThread(url, MASTER_KEY, id, 'env-key');
        assert.equal((await call(url, 'GET', `/v1/threads/${id}`, { key: `${MASTER_KEY}-wrong` })).status, 401);
        const azure = await fetch(`${url}/v1/threads/${id}`, { headers: { 'api-key': MASTER_KEY } });
        assert.equal(azure.status, 200);
        await azure.text();
      } finally {
        await cli.stop();
      }
      await assertStopped(cli);
      assertNoSecrets(cli, MASTER_KEY);
    });
  });

  describe('assistd serve: config problems', () => {
    test('invalid YAML → non-zero exit, a config error naming the file, and nothing started', async () => {
      const dir = join(scratchDir('unused'), 'data');
      const config = writeFile(scratchDir('config'), 'bad.yaml', 'model_list:\n  - model_name: a\n    litellm_params: {model: x\n  oops: [\n');
      const cli = new CliProcess(['serve', '--port', '0', '--config', config, '--data-dir', dir]);
      const exit = await cli.waitExit();
      assert.notEqual(exit.code, 0);
      assert.match(cli.stderr, /^assistd: config error: .*not valid YAML/m);
      assert.ok(cli.stderr.includes(config), cli.describe());
      assert.doesNotMatch(cli.stdout, /listening/);
      assert.doesNotMatch(cli.stderr, /^\s+at /m, 'no stack trace for a config error');
      assert.equal(existsSync(dir), false, 'the data dir is not created when the config is bad');
    });

    test('a missing os.environ variable → non-zero exit and stderr naming the key path and the variable', async () => {
      const dir = join(scratchDir('unused'), 'data');
      const config = writeFile(
        scratchDir('config'),
        'env.yaml',
        `model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/ASSISTD_TEST_SURELY_UNSET_VAR
general_settings:
  master_key: os.environ/CLI_MK
  `,
      );
      const cli = new CliProcess(['serve', '--port', '0', '--config', config, '--data-dir', dir], {
        env: assistdEnv({ CLI_MK: MASTER_KEY, ASSISTD_TEST_SURELY_UNSET_VAR: undefined }),
      });
      const exit = await cli.waitExit();
      assert.notEqual(exit.code, 0);
      assert.match(cli.stderr, /config error: model_list\[0\]\.litellm_params\.api_key: .*ASSISTD_TEST_SURELY_UNSET_VAR/);
      assert.doesNotMatch(cli.stdout, /listening/);
      assertNoSecrets(cli, MASTER_KEY);
    });

    test('a missing config file → non-zero exit naming the file', async () => {
      const missing = join(scratchDir('config'), 'nope.yaml');
      const cli = new CliProcess(['serve', '--port', '0', '--config', missing, '--data-dir', join(scratchDir('unused'), 'd')]);
      assert.notEqual((await cli.waitExit()).code, 0);
      assert.match(cli.stderr, /config error/);
      assert.ok(cli.stderr.includes(missing), cli.describe());
    });

    test('LiteLLM keys assistd does not use → exactly one warning line listing them, and it still starts', async () => {
      const dir = await dataDir();
      const config = writeFile(
        scratchDir('config'),
        'litellm.yaml',
        `model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/UPSTREAM_KEY
    model_info:
      id: one
general_settings:
  master_key: os.environ/CLI_MK
  alerting: ["slack"]
litellm_settings:
  drop_params: true
  success_callback: ["langfuse"]
router_settings:
  routing_strategy: simple-shuffle
  enable_pre_call_checks: true
  `,
      );
      const { cli, url } = await serve(['--config', config, '--data-dir', dir], {
        env: assistdEnv({ UPSTREAM_KEY, CLI_MK: MASTER_KEY }),
        models: 1,
      });
      try {
        const warnings = warningLines(cli);
        assert.equal(warnings.length, 1, cli.describe());
        for (const key of ['litellm_settings.success_callback', 'router_settings.enable_pre_call_checks', 'general_settings.alerting', 'model_list[0].model_info']) {
          assert.ok(warnings[0]!.includes(key), `warning should list ${key}: ${warnings[0]}`);
        }
        assert.equal(cli.stderr.trim().split('\n').length, 1, `nothing else on stderr:\n${cli.stderr}`);
        assert.match(cli.stdout, /^assistd: model: gpt-4o -> openai\/gpt-4o at https:\/\/api\.openai\.com\/v1$/m);
        assert.equal((await call(url, 'GET', '/health')).status, 200);
      } finally {
        await cli.stop();
      }
      await assertStopped(cli);
      assertNoSecrets(cli, MASTER_KEY, UPSTREAM_KEY);
    });
  });

  describe('assistd serve: command line', () => {
    for (const value of ['abc', '70000', '-1', '1.5']) {
      test(`--port ${value} → non-zero exit with a message`, async () => {
        const dir = join(scratchDir('unused'), 'data');
        const cli = new CliProcess(['serve', `--port=${value}`, '--data-dir', dir]);
        const exit = await cli.waitExit();
        assert.notEqual(exit.code, 0);
        assert.match(cli.stderr, /--port/);
        assert.ok(cli.stderr.includes(value), cli.describe());
        assert.doesNotMatch(cli.stdout, /listening/);
        assert.equal(existsSync(dir), false);
      });
    }

    test('--port "" (empty) is rejected rather than silently meaning a random port', async () => {
      const dir = await dataDir();
      const cli = new CliProcess(['serve', '--port=', '--data-dir', dir]);
      const outcome = await Promise.race([
        cli.waitExit().then((exit) => ({ exit })),
        // waitFor rejects when the process exits first; the exit branch then decides
        cli.waitFor(LISTENING).then(
          () => ({ exit: null }),
          () => new Promise<never>(() => {}),
        ),
      ]);
      if (outcome.exit === null) await cli.stop();
      assert.ok(outcome.exit !== null && outcome.exit.code !== 0, `assistd started on an empty --port:\n${cli.describe()}`);
      assert.match(cli.stderr, /--port/);
    });

    test('ASSISTD_DATA_DIR is honoured when --data-dir is absent, and --data-dir wins over it', async () => {
      const dir = await dataDir();
      const cwd = scratchDir('cwd');
      const first = await serve([], { env: assistdEnv({ ASSISTD_DATA_DIR: dir }), cwd });
      let id: string;
      try {
        assert.match(first.cli.stdout, new RegExp(`^assistd: storage: embedded PGlite in ${escape(dir)}$`, 'm'));
        assert.ok(existsSync(join(dir, 'assistd.lock')), 'the lock is taken in ASSISTD_DATA_DIR');
        assert.equal(existsSync(join(cwd, '.assistd')), false, 'the default ./.assistd is not used');
        id = await createThread(first.url, undefined, 'env-dir');
      } finally {
        await first.cli.stop();
      }
      await assertStopped(first.cli);

      const other = join(scratchDir('unused'), 'never-created');
      const second = await serve(['--data-dir', dir], { env: assistdEnv({ ASSISTD_DATA_DIR: other }), cwd });
      try {
        assert.match(second.cli.stdout, new RegExp(`storage: embedded PGlite in ${escape(dir)}$`, 'm'));
        assert.equal(existsSync(other), false);
        await assertThread(second.url, undefined, id, 'env-dir');
      } finally {
        await second.cli.stop();
      }
      await assertStopped(second.cli);
    });

    test('with neither, the data dir is ./.assistd in the working directory (printed as an absolute path)', async () => {
      const cwd = scratchDir('cwd');
      cpSync(await dataDir(), join(cwd, '.assistd'), { recursive: true });
      const { cli } = await serve([], { cwd });
      try {
        assert.match(cli.stdout, new RegExp(`storage: embedded PGlite in ${escape(join(cwd, '.assistd'))}$`, 'm'));
      } finally {
        await cli.stop();
      }
      await assertStopped(cli);
    });
  });

  describe('assistd: help, version, and what start-up says', () => {
    test('--help names every option and every environment variable assistd reads', async () => {
      for (const args of [['--help'], ['serve', '--help'], ['help']]) {
        const cli = new CliProcess(args);
        assert.deepEqual(await cli.waitExit(), { code: 0, signal: null }, cli.describe());
        for (const word of ['--config', '--port', '--host', '--data-dir', '--version', 'OPENAI_API_KEY', 'OPENAI_BASE_URL', 'ASSISTD_MASTER_KEY', 'DATABASE_URL', 'ASSISTD_DATA_DIR', 'ASSISTD_LOG_LEVEL']) {
          assert.ok(cli.stdout.includes(word), `${args.join(' ')} mentions ${word}:\n${cli.stdout}`);
        }
      }
    });

    test('--version (and -v, and serve --version) prints the package version', async () => {
      const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
      for (const args of [['--version'], ['-v'], ['version'], ['serve', '--version']]) {
        const cli = new CliProcess(args);
        assert.deepEqual(await cli.waitExit(), { code: 0, signal: null }, cli.describe());
        assert.equal(cli.stdout, `assistd ${version}\n`, args.join(' '));
      }
    });

    test('the listening line says plainly what is bound and who can reach it', async () => {
      const open = await serve(['--data-dir', await dataDir(), '--host', '0.0.0.0']);
      const local = await serve(['--data-dir', await dataDir()]);
      try {
        assert.equal(open.scope, 'every network interface');
        assert.match(open.cli.stdout, new RegExp(`^assistd: listening on 0\\.0\\.0\\.0 port ${open.port} \\(every network interface\\); from this machine: http://127\\.0\\.0\\.1:${open.port}$`, 'm'));
        assert.equal(local.scope, 'this machine only');
        assert.match(local.cli.stdout, new RegExp(`^assistd: listening on 127\\.0\\.0\\.1 port ${local.port} \\(this machine only\\): http://127\\.0\\.0\\.1:${local.port}$`, 'm'));
        assert.doesNotMatch(open.cli.stdout + local.cli.stdout, /bound to/);
      } finally {
        await Promise.all([open.cli.stop(), local.cli.stop()]);
      }
    });

    test('a first start on a new data dir says it is creating the database and migrating before it listens; a second start only opens it', async () => {
      const dir = join(scratchDir('fresh'), 'data');
      const first = await serve(['--data-dir', dir]);
      await first.cli.stop();
      await assertStopped(first.cli);
      const lines = first.cli.stdout.split('\n');
      const creating = lines.findIndex((line) => line === `assistd: creating the embedded database in ${dir} (first start; this takes a few seconds)`);
      const migrating = lines.findIndex((line) => /^assistd: applying database migrations: 1 \(assistants, threads, messages\), 2 /.test(line));
      const listeningAt = lines.findIndex((line) => LISTENING.test(line));
      assert.ok(creating >= 0 && migrating > creating && listeningAt > migrating, first.cli.describe());

      const second = await serve(['--data-dir', dir]);
      await second.cli.stop();
      await assertStopped(second.cli);
      assert.match(second.cli.stdout, new RegExp(`^assistd: opening the embedded database in ${escape(dir)}$`, 'm'));
      assert.doesNotMatch(second.cli.stdout, /creating|applying/);
    });

    test('with no model configured, start-up says what to do next', async () => {
      const { cli } = await serve(['--data-dir', await dataDir()]);
      await cli.stop();
      assert.match(cli.stdout, /^assistd: models: none configured, so every run would fail with model_not_found\. Next: set OPENAI_API_KEY .*OPENAI_BASE_URL .*--config FILE/m);
    });
  });

  describe('assistd serve: the data dir lock', () => {
    test('a second serve on the same data dir exits non-zero with a clear message; the first keeps working; a later start sees the data', async () => {
      const dir = await dataDir();
      const first = await serve(['--data-dir', dir]);
      let before: string;
      let during: string;
      try {
        before = await createThread(first.url, undefined, 'before');

        const second = new CliProcess(['serve', '--port', '0', '--data-dir', dir]);
        const exit = await second.waitExit();
        assert.notEqual(exit.code, 0, second.describe());
        assert.equal(exit.signal, null);
        assert.ok(second.stderr.includes(dir), `the message names the data dir:\n${second.describe()}`);
        assert.match(second.stderr, /in use by another assistd process/);
        assert.ok(second.stderr.includes(`pid ${first.cli.proc.pid}`), second.describe());
        assert.doesNotMatch(second.stderr, /^\s+at /m, 'no stack trace');
        assert.doesNotMatch(second.stdout, /listening/);

        // the first server is untouched: its lock is still there and it still answers
        assert.equal(JSON.parse(readFileSync(join(dir, 'assistd.lock'), 'utf8')).pid, first.cli.proc.pid);
        await assertThread(first.url, undefined, before, 'before');
        during = await createThread(first.url, undefined, 'during');
      } finally {
        await first.cli.stop();
      }
      await assertStopped(first.cli);
      assert.equal(existsSync(join(dir, 'assistd.lock')), false, 'a clean stop releases the lock');

      const third = await serve(['--data-dir', dir]);
      try {
        await assertThread(third.url, undefined, before, 'before');
        await assertThread(third.url, undefined, during, 'during');
      } finally {
        await third.cli.stop();
      }
      await assertStopped(third.cli);
    });

    test('a stale lock left by a dead process is taken over (and so is an unreadable one)', async () => {
      const dir = await dataDir();
      const pid = deadPid();
      writeFileSync(join(dir, 'assistd.lock'), JSON.stringify({ pid, host: hostname() }));
      const first = await serve(['--data-dir', dir]);
      try {
        assert.equal(JSON.parse(readFileSync(join(dir, 'assistd.lock'), 'utf8')).pid, first.cli.proc.pid);
        assert.equal((await call(first.url, 'GET', '/health')).status, 200);
      } finally {
        await first.cli.stop();
      }
      await assertStopped(first.cli);

      writeFileSync(join(dir, 'assistd.lock'), '{"pid": 12');
      const second = await serve(['--data-dir', dir]);
      try {
        assert.equal(JSON.parse(readFileSync(join(dir, 'assistd.lock'), 'utf8')).pid, second.cli.proc.pid);
      } finally {
        await second.cli.stop();
      }
      await assertStopped(second.cli);
      assert.equal(existsSync(join(dir, 'assistd.lock')), false);
    });

    test('a lock written on another host is respected, whatever its pid, and the message says how to clear it', async () => {
      const dir = scratchDir('foreign');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'assistd.lock'), JSON.stringify({ pid: deadPid(), host: 'another-container' }));
      const cli = new CliProcess(['serve', '--port', '0', '--data-dir', dir]);
      assert.notEqual((await cli.waitExit()).code, 0);
      assert.match(cli.stderr, /in use by another assistd process \(pid \d+ on host another-container\)/);
      assert.match(cli.stderr, /delete .*assistd\.lock/);
      assert.equal(JSON.parse(readFileSync(join(dir, 'assistd.lock'), 'utf8')).host, 'another-container');
    });

    test('a lock held by a live process is respected', async () => {
      const dir = scratchDir('locked');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'assistd.lock'), JSON.stringify({ pid: process.pid, host: 'here' }));
      const cli = new CliProcess(['serve', '--port', '0', '--data-dir', dir]);
      assert.notEqual((await cli.waitExit()).code, 0);
      assert.ok(cli.stderr.includes(`pid ${process.pid}`), cli.describe());
      assert.equal(JSON.parse(readFileSync(join(dir, 'assistd.lock'), 'utf8')).pid, process.pid, 'the lock is left alone');
    });
  });

  describe('assistd serve: shutdown', () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      test(`${signal} while a request is in flight: the request completes, the process exits 0 and prints "stopped"; data survives a restart`, async () => {
        const dir = await dataDir();
        const server = await serve(['--data-dir', dir]);
        const { cli } = server;
        let id: string;
        try {
          const written = await createThread(server.url, undefined, `before-${signal}`);

          // Expect: 100-continue makes the server acknowledge the parsed headers before the body is sent,
          // so the request is provably in flight when the signal arrives.
          const body = JSON.stringify({ metadata: { tag: `in-flight-${signal}` } });
          const target = new URL('/v1/threads', server.url);
          let continued!: () => void;
          const continueSeen = new Promise<void>((resolve) => (continued = resolve));
          const responded = new Promise<{ status: number; text: string }>((resolve, reject) => {
            const req = httpRequest(
              {
                host: target.hostname,
                port: target.port,
                path: target.pathname,
                method: 'POST',
                headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: '100-continue' },
                // a one-off connection (Connection: close): see the keep-alive test below for why
                agent: false,
              },
              (res) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (chunk: string) => (text += chunk));
                res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
                res.on('error', reject);
              },
            );
            req.on('error', reject);
            req.on('continue', () => {
              continued();
              // the body follows only once the server is shutting down
              cli
                .waitFor(new RegExp(`^assistd: ${signal} received`, 'm'))
                .then(() => req.end(body), reject);
            });
            req.flushHeaders();
          });
          await continueSeen;
          cli.proc.kill(signal);
          const response = await responded;
          assert.equal(response.status, 200, response.text);
          id = JSON.parse(response.text).id;
          assert.match(id, /^thread_/);

          const exit = await cli.waitExit();
          assert.deepEqual(exit, { code: 0, signal: null }, cli.describe());
          assert.match(
            cli.stdout,
            new RegExp(`^assistd: ${signal} received: new requests get 503; requests and runs in flight have up to 25 s to finish \\(send ${signal} again to stop now\\)$`, 'm'),
          );
          assert.match(cli.stdout, /^assistd: stopped$/m);
          assert.equal(existsSync(join(dir, 'assistd.lock')), false, 'the lock is released');

          const again = await serve(['--data-dir', dir]);
          try {
            await assertThread(again.url, undefined, written, `before-${signal}`);
            await assertThread(again.url, undefined, id, `in-flight-${signal}`);
          } finally {
            await again.cli.stop(signal);
          }
          await assertStopped(again.cli);
        } finally {
          await cli.stop('SIGKILL');
        }
      });
    }
  });

  describe('assistd serve: shutdown with keep-alive clients', () => {
    test('the response to a request in flight at SIGTERM says Connection: close, so a keep-alive client cannot hold up the exit', async () => {
      const dir = await dataDir();
      const { cli, port } = await serve(['--data-dir', dir]);
      const socket = connect(port, '127.0.0.1');
      try {
        socket.setEncoding('utf8');
        let received = '';
        socket.on('data', (chunk: string) => (received += chunk));
        /** Resolves with the first text matching `pattern` in what the server sent; rejects if it hangs up first. */
        const until = (pattern: RegExp) =>
          new Promise<RegExpMatchArray>((resolve, reject) => {
            const check = () => {
              const match = received.match(pattern);
              if (match) {
                socket.off('data', check);
                resolve(match);
              }
            };
            socket.on('data', check);
            socket.once('close', () => reject(new Error(`connection closed; received:\n${received}`)));
            socket.once('error', reject);
            check();
          });
        const continued = until(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
        // the final response: status line, headers, and a body of content-length bytes
        const final = until(/HTTP\/1\.1 [2-5]\d\d [^\r]*\r\n(?:[^\r]+\r\n)*\r\n\{.*\}$/s);
        final.catch(() => {}); // awaited below; this only keeps an early hang-up from being an unhandled rejection
        // a keep-alive HTTP/1.1 client, as every pooled client (undici, the openai SDK, browsers) is
        socket.write(
          'POST /v1/threads HTTP/1.1\r\nHost: assistd\r\nContent-Type: application/json\r\nContent-Length: 2\r\n' +
            'Connection: keep-alive\r\nExpect: 100-continue\r\n\r\n',
        );
        await continued;
        cli.proc.kill('SIGTERM');
        await cli.waitFor(/^assistd: SIGTERM received/m);
        socket.write('{}');
        const response = (await final)[0];
        assert.match(response, /^HTTP\/1\.1 200 /, response);
        // Without Connection: close the socket stays open after the response, server.close() waits for it,
        // and the process only exits when the client hangs up or keepAliveTimeout (72 s in fastify) passes.
        assert.match(response.split('\r\n\r\n')[0]!, /\r\nconnection: close/i, `response sent while stopping:\n${response}`);
      } finally {
        socket.destroy();
        await cli.waitExit();
      }
      await assertStopped(cli);
    });
  });

  describe('assistd serve: PostgreSQL via DATABASE_URL', () => {
    const skip = process.env.DATABASE_URL ? false : 'DATABASE_URL is not set';
    const schemas: string[] = [];
    after(async () => {
      if (schemas.length === 0) return;
      const cleanup = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await cleanup.connect();
      try {
        for (const schema of schemas) await cleanup.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await cleanup.end();
      }
    });

    /** The test database URL with the given password and a private schema, so nothing else is touched. */
    async function databaseUrl(password: string | null, passwordInQuery = false): Promise<{ url: string; secret: string }> {
      const base = new URL(process.env.DATABASE_URL!);
      const secret = base.password ? decodeURIComponent(base.password) : password!;
      const schema = `t_cli_${process.pid}_${randomBytes(4).toString('hex')}`;
      const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await admin.connect();
      try {
        await admin.query(`CREATE SCHEMA ${schema}`);
        // The search path below leaves public out: the vector extension must already be in public, or
        // the migration would create it inside this schema, and dropping the schema would drop it.
        await admin.query(`BEGIN; SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY}); CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public; COMMIT`);
      } finally {
        await admin.end();
      }
      schemas.push(schema);
      const url = new URL(base);
      if (passwordInQuery) {
        url.password = '';
        url.searchParams.set('password', secret);
      } else {
        url.password = secret;
      }
      url.searchParams.set('options', `-c search_path=${schema}`);
      return { url: url.toString(), secret };
    }

    test('the banner says PostgreSQL and never prints the password; no data dir lock is taken', { skip }, async () => {
      const { url, secret } = await databaseUrl('secretpw');
      const dir = scratchDir('pg');
      const env = assistdEnv({ DATABASE_URL: url, ASSISTD_MASTER_KEY: MASTER_KEY });
      const first = await serve(['--data-dir', dir], { env });
      const second = await serve(['--data-dir', dir], { env });
      try {
        for (const { cli } of [first, second]) {
          assert.match(cli.stdout, /^assistd: storage: PostgreSQL postgres(ql)?:\/\//m);
          assert.doesNotMatch(cli.stdout, /PGlite/);
        }
        assert.equal(existsSync(join(dir, 'assistd.lock')), false);
        const health = await call(first.url, 'GET', '/health');
        assert.deepEqual(health.json, { status: 'ok', storage: 'postgres' });
        // both processes share the database
        const id = await createThread(first.url, MASTER_KEY, 'shared');
        await assertThread(second.url, MASTER_KEY, id, 'shared');
      } finally {
        await Promise.all([first.cli.stop(), second.cli.stop()]);
      }
      await assertStopped(first.cli);
      await assertStopped(second.cli);
      assertNoSecrets(first.cli, secret, MASTER_KEY);
      assertNoSecrets(second.cli, secret, MASTER_KEY);
    });

    test('a password given as a ?password= query parameter is not printed either', { skip }, async () => {
      const { url, secret } = await databaseUrl('secretpw', true);
      const { cli } = await serve(['--data-dir', scratchDir('pg')], { env: assistdEnv({ DATABASE_URL: url }) });
      try {
        assert.match(cli.stdout, /^assistd: storage: PostgreSQL /m);
      } finally {
        await cli.stop();
      }
      await assertStopped(cli);
      assertNoSecrets(cli, secret);
    });
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
