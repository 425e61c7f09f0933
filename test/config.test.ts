import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadConfig, parseConfig, type Config } from '../src/config.js';

const workDir = mkdtempSync(join(tmpdir(), 'assistd-config-test-'));
after(() => rmSync(workDir, { recursive: true, force: true }));

let fileCounter = 0;
function writeConfig(text: string): string {
  const file = join(workDir, `config-${fileCounter++}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** Asserts that `run` throws a ConfigError whose path is `path` and whose message names it. */
function assertConfigError(run: () => unknown, path: string, messagePattern?: RegExp): ConfigError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.name, 'ConfigError');
  assert.equal(caught.path, path);
  if (path !== '') assert.ok(caught.message.includes(path), `message "${caught.message}" should name ${path}`);
  if (messagePattern) assert.match(caught.message, messagePattern);
  return caught;
}

const LITELLM_YAML = `
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: https://api.example.com/v1
      api_key: os.environ/MY_KEY
      api_version: "2024-08-01-preview"
    model_info:
      id: deployment-1
      mode: chat
  - model_name: llama
    litellm_params:
      model: ollama/llama3.1:8b
      api_base: http://localhost:11434
      timeout: 30
      max_retries: 2
  - model_name: plain
    litellm_params:
      model: gpt-4o-mini
general_settings:
  master_key: os.environ/MK
  alerting: ["slack"]
litellm_settings:
  drop_params: true
  success_callback: ["langfuse"]
router_settings:
  routing_strategy: simple-shuffle
`;

const LITELLM_ENV = { MY_KEY: 'sk-upstream-secret', MK: 'sk-master-secret' };

function checkLiteLlmConfig(config: Config) {
  assert.equal(config.modelList.length, 3);
  const [first, second, third] = config.modelList;
  assert.deepEqual(
    { ...first, params: undefined },
    {
      modelName: 'gpt-4o',
      provider: 'openai',
      model: 'gpt-4o',
      apiBase: 'https://api.example.com/v1',
      apiKey: 'sk-upstream-secret',
      apiVersion: '2024-08-01-preview',
      params: undefined,
      mode: 'chat',
    },
  );
  // every litellm_params value is kept, with secrets resolved
  assert.deepEqual(first!.params, {
    model: 'openai/gpt-4o',
    api_base: 'https://api.example.com/v1',
    api_key: 'sk-upstream-secret',
    api_version: '2024-08-01-preview',
  });

  assert.equal(second!.modelName, 'llama');
  assert.equal(second!.provider, 'ollama');
  // only the first slash separates the provider; colons stay in the model name
  assert.equal(second!.model, 'llama3.1:8b');
  assert.equal(second!.apiBase, 'http://localhost:11434');
  assert.equal(second!.apiKey, null);
  assert.equal(second!.apiVersion, null);
  assert.equal(second!.params.timeout, 30);
  assert.equal(second!.params.max_retries, 2);

  assert.equal(third!.modelName, 'plain');
  assert.equal(third!.provider, 'openai');
  assert.equal(third!.model, 'gpt-4o-mini');
  assert.equal(third!.apiBase, null);

  assert.equal(config.masterKey, 'sk-master-secret');
  assert.equal(config.databaseUrl, null);
  assert.equal(config.maxRequestBytes, 10 * 1024 * 1024);
  assert.deepEqual(
    [...config.ignoredKeys].sort(),
    // model_info.mode is read (embedding models are found by it); its other keys are not.
    ['general_settings.alerting', 'litellm_settings.success_callback', 'model_list[0].model_info.id'].sort(),
  );
  // exactly those four, each once
  assert.equal(config.ignoredKeys.length, 3);
  // LiteLLM's routing keys are read, from either section
  assert.equal(config.router.dropParams, true);
  assert.equal(config.router.routingStrategy, 'simple-shuffle');
}

describe('parseConfig / loadConfig with a LiteLLM config', () => {
  test('parseConfig maps model_list, resolves os.environ secrets from the env passed in, lists ignored keys', () => {
    const config = parseConfig(parseYaml(LITELLM_YAML), LITELLM_ENV);
    checkLiteLlmConfig(config);
    assert.equal(config.source, null);
  });

  test('loadConfig reads the same file and records its path as source', () => {
    const file = writeConfig(LITELLM_YAML);
    const config = loadConfig(file, LITELLM_ENV);
    checkLiteLlmConfig(config);
    assert.equal(config.source, file);
  });

  test('secrets come from the env argument, not from process.env', () => {
    const saved = process.env.MY_KEY;
    process.env.MY_KEY = 'from-process-env';
    try {
      const config = parseConfig(parseYaml(LITELLM_YAML), { MY_KEY: 'from-argument', MK: 'mk' });
      assert.equal(config.modelList[0]!.apiKey, 'from-argument');
      assertConfigError(() => parseConfig(parseYaml(LITELLM_YAML), { MK: 'mk' }), 'model_list[0].litellm_params.api_key');
    } finally {
      if (saved === undefined) delete process.env.MY_KEY;
      else process.env.MY_KEY = saved;
    }
  });

  test('known but unused litellm_params (timeout, max_retries, ...) are not reported; unknown ones are', () => {
    const config = parseConfig(
      {
        model_list: [
          {
            model_name: 'a',
            litellm_params: {
              model: 'openai/gpt-4o',
              timeout: 10,
              stream_timeout: 5,
              max_retries: 1,
              extra_headers: { 'x-a': 'b' },
              organization: 'org',
              rpm: 100,
            },
          },
        ],
      },
      {},
    );
    assert.deepEqual(config.ignoredKeys, []);
  });

  test('a config with only used keys has no ignored keys', () => {
    const config = parseConfig(
      {
        model_list: [{ model_name: 'a', litellm_params: { model: 'openai/gpt-4o', api_key: 'k' } }],
        general_settings: { master_key: 'm', database_url: 'postgres://h/db', max_request_size_mb: 1 },
      },
      {},
    );
    assert.deepEqual(config.ignoredKeys, []);
  });
});

describe('secret resolution errors name the key path', () => {
  test('missing env var for litellm_params.api_key', () => {
    const error = assertConfigError(
      () => parseConfig(parseYaml(LITELLM_YAML), { MK: 'mk' }),
      'model_list[0].litellm_params.api_key',
    );
    assert.match(error.message, /MY_KEY/);
    assert.match(error.message, /not set/);
  });

  test('missing env var for general_settings.master_key', () => {
    const error = assertConfigError(() => parseConfig(parseYaml(LITELLM_YAML), { MY_KEY: 'k' }), 'general_settings.master_key');
    assert.match(error.message, /\bMK\b/);
  });

  test('missing env var deeper in the document (inside a list, a nested mapping)', () => {
    assertConfigError(
      () =>
        parseConfig(
          {
            model_list: [
              { model_name: 'a', litellm_params: { model: 'openai/a' } },
              { model_name: 'b', litellm_params: { model: 'openai/b', extra_headers: { 'x-key': 'os.environ/HDR' } } },
            ],
          },
          {},
        ),
      'model_list[1].litellm_params.extra_headers.x-key',
      /HDR/,
    );
  });

  test('loadConfig reports the same path for a missing env var', () => {
    const file = writeConfig(LITELLM_YAML);
    assertConfigError(() => loadConfig(file, { MY_KEY: 'k' }), 'general_settings.master_key', /MK/);
  });

  test('an env var set to the empty string is resolved (not treated as missing)', () => {
    const config = parseConfig(
      { model_list: [{ model_name: 'a', litellm_params: { model: 'openai/a', api_key: 'os.environ/EMPTY' } }] },
      { EMPTY: '' },
    );
    assert.equal(config.modelList[0]!.apiKey, '');
  });
});

describe('structural errors name the key path', () => {
  test('model_list that is not a list', () => {
    assertConfigError(() => parseConfig({ model_list: { model_name: 'a' } }, {}), 'model_list', /list/);
    assertConfigError(() => parseConfig({ model_list: 'gpt-4o' }, {}), 'model_list');
  });

  test('model_list entry that is not a mapping', () => {
    assertConfigError(() => parseConfig({ model_list: ['gpt-4o'] }, {}), 'model_list[0]');
  });

  test('missing or empty model_name', () => {
    assertConfigError(
      () => parseConfig({ model_list: [{ litellm_params: { model: 'openai/gpt-4o' } }] }, {}),
      'model_list[0].model_name',
    );
    assertConfigError(
      () =>
        parseConfig(
          {
            model_list: [
              { model_name: 'ok', litellm_params: { model: 'openai/gpt-4o' } },
              { model_name: '', litellm_params: { model: 'openai/gpt-4o' } },
            ],
          },
          {},
        ),
      'model_list[1].model_name',
    );
    assertConfigError(
      () => parseConfig({ model_list: [{ model_name: 42, litellm_params: { model: 'openai/gpt-4o' } }] }, {}),
      'model_list[0].model_name',
    );
  });

  test('missing litellm_params', () => {
    assertConfigError(() => parseConfig({ model_list: [{ model_name: 'a' }] }, {}), 'model_list[0].litellm_params');
  });

  test('missing or empty litellm_params.model', () => {
    assertConfigError(
      () =>
        parseConfig(
          {
            model_list: [
              { model_name: 'a', litellm_params: { model: 'openai/a' } },
              { model_name: 'b', litellm_params: { api_base: 'http://x' } },
            ],
          },
          {},
        ),
      'model_list[1].litellm_params.model',
    );
    assertConfigError(
      () => parseConfig({ model_list: [{ model_name: 'a', litellm_params: { model: '' } }] }, {}),
      'model_list[0].litellm_params.model',
    );
  });

  test('a provider prefix with no model after it ("openai/") is rejected', () => {
    // "openai/" names no upstream model; accepting it yields a deployment with model ''.
    assertConfigError(
      () => parseConfig({ model_list: [{ model_name: 'a', litellm_params: { model: 'openai/' } }] }, {}),
      'model_list[0].litellm_params.model',
    );
  });

  test('non-string api_key / api_base are rejected with their path; numbers are accepted as strings', () => {
    assertConfigError(
      () => parseConfig({ model_list: [{ model_name: 'a', litellm_params: { model: 'openai/a', api_key: ['x'] } }] }, {}),
      'model_list[0].litellm_params.api_key',
    );
    assertConfigError(
      () => parseConfig({ model_list: [{ model_name: 'a', litellm_params: { model: 'openai/a', api_base: { u: 1 } } }] }, {}),
      'model_list[0].litellm_params.api_base',
    );
    const config = parseConfig(
      { model_list: [{ model_name: 'a', litellm_params: { model: 'azure/dep', api_version: 2024 } }] },
      {},
    );
    assert.equal(config.modelList[0]!.apiVersion, '2024');
  });

  test('general_settings that is not a mapping', () => {
    assertConfigError(() => parseConfig({ general_settings: ['x'] }, {}), 'general_settings');
  });

  test('a non-string master_key is rejected with its path', () => {
    assertConfigError(() => parseConfig({ general_settings: { master_key: { a: 1 } } }, {}), 'general_settings.master_key');
  });

  test('a document that is not a mapping', () => {
    assertConfigError(() => parseConfig(['a', 'b'], {}), '');
    assertConfigError(() => parseConfig('just a string', {}), '');
  });
});

describe('loadConfig file handling', () => {
  test('invalid YAML is a ConfigError that names the file', () => {
    const file = writeConfig('model_list:\n  - model_name: a\n    litellm_params: {model: openai/a\n  bad: [\n');
    const error = assertConfigError(() => loadConfig(file, {}), '');
    assert.ok(error.message.includes(file), error.message);
    assert.match(error.message, /not valid YAML/);
  });

  test('duplicate keys are invalid YAML', () => {
    const file = writeConfig('general_settings:\n  master_key: a\n  master_key: b\n');
    assertConfigError(() => loadConfig(file, {}), '', /not valid YAML/);
  });

  test('a YAML file whose top level is a list is a ConfigError', () => {
    const file = writeConfig('- model_name: a\n');
    assertConfigError(() => loadConfig(file, {}), '', /mapping/);
  });

  test('a missing file is a ConfigError that names the file', () => {
    const file = join(workDir, 'does-not-exist.yaml');
    const error = assertConfigError(() => loadConfig(file, {}), '');
    assert.ok(error.message.includes(file), error.message);
  });

  test('an empty file gives the defaults', () => {
    const file = writeConfig('');
    const config = loadConfig(file, {});
    assert.deepEqual(config.modelList, []);
    assert.equal(config.masterKey, null);
    assert.equal(config.databaseUrl, null);
    assert.equal(config.maxRequestBytes, 10 * 1024 * 1024);
    assert.deepEqual(config.ignoredKeys, []);
    assert.equal(config.source, file);
  });

  test('no file gives the defaults plus env fallbacks', () => {
    const config = loadConfig(undefined, { ASSISTD_MASTER_KEY: 'env-key', DATABASE_URL: 'postgres://db/x' });
    assert.deepEqual(config.modelList, []);
    assert.equal(config.masterKey, 'env-key');
    assert.equal(config.databaseUrl, 'postgres://db/x');
    assert.equal(config.source, null);
    assert.deepEqual(config.ignoredKeys, []);
  });
});

describe('env fallbacks', () => {
  test('ASSISTD_MASTER_KEY is used when general_settings.master_key is absent', () => {
    assert.equal(parseConfig({}, { ASSISTD_MASTER_KEY: 'env-key' }).masterKey, 'env-key');
    assert.equal(parseConfig({ general_settings: {} }, { ASSISTD_MASTER_KEY: 'env-key' }).masterKey, 'env-key');
  });

  test('general_settings.master_key wins over ASSISTD_MASTER_KEY', () => {
    assert.equal(parseConfig({ general_settings: { master_key: 'file-key' } }, { ASSISTD_MASTER_KEY: 'env-key' }).masterKey, 'file-key');
  });

  test('no master key anywhere, or an empty ASSISTD_MASTER_KEY, means null', () => {
    assert.equal(parseConfig({}, {}).masterKey, null);
    assert.equal(parseConfig({}, { ASSISTD_MASTER_KEY: '' }).masterKey, null);
  });

  test('DATABASE_URL is used when general_settings.database_url is absent', () => {
    assert.equal(parseConfig({}, { DATABASE_URL: 'postgres://u@h:5432/db' }).databaseUrl, 'postgres://u@h:5432/db');
    assert.equal(parseConfig({}, { DATABASE_URL: '' }).databaseUrl, null);
    assert.equal(parseConfig({}, {}).databaseUrl, null);
  });

  test('general_settings.database_url wins over DATABASE_URL, and may itself be an os.environ reference', () => {
    assert.equal(
      parseConfig({ general_settings: { database_url: 'postgres://file/db' } }, { DATABASE_URL: 'postgres://env/db' }).databaseUrl,
      'postgres://file/db',
    );
    assert.equal(
      parseConfig({ general_settings: { database_url: 'os.environ/PG' } }, { PG: 'postgres://ref/db' }).databaseUrl,
      'postgres://ref/db',
    );
  });
});

describe('max_request_size_mb', () => {
  test('is converted to maxRequestBytes', () => {
    assert.equal(parseConfig({ general_settings: { max_request_size_mb: 25 } }, {}).maxRequestBytes, 25 * 1024 * 1024);
    assert.equal(parseConfig({ general_settings: { max_request_size_mb: 0.5 } }, {}).maxRequestBytes, 512 * 1024);
    assert.equal(parseConfig({ general_settings: { max_request_size_mb: '2' } }, {}).maxRequestBytes, 2 * 1024 * 1024);
  });

  test('defaults to 10 MB', () => {
    assert.equal(parseConfig({}, {}).maxRequestBytes, 10 * 1024 * 1024);
    assert.equal(parseConfig({ general_settings: { max_request_size_mb: null } }, {}).maxRequestBytes, 10 * 1024 * 1024);
  });

  test('zero, negative or non-numeric values are ConfigErrors naming the key', () => {
    for (const value of [0, -1, 'lots', '']) {
      assertConfigError(
        () => parseConfig({ general_settings: { max_request_size_mb: value } }, {}),
        'general_settings.max_request_size_mb',
      );
    }
  });

  test('is read from YAML through loadConfig', () => {
    const file = writeConfig('general_settings:\n  max_request_size_mb: 3\n');
    assert.equal(loadConfig(file, {}).maxRequestBytes, 3 * 1024 * 1024);
  });
});

describe('provider prefixes', () => {
  test('bare model → provider openai; prefixed model → that provider; only the first slash splits', () => {
    const config = parseConfig(
      {
        model_list: [
          { model_name: 'bare', litellm_params: { model: 'gpt-4o' } },
          { model_name: 'azure', litellm_params: { model: 'azure/my-deployment', api_version: '2024-02-01' } },
          { model_name: 'anthropic', litellm_params: { model: 'anthropic/claude-3-5-sonnet-20240620' } },
          { model_name: 'nested', litellm_params: { model: 'openai/org/custom-model' } },
        ],
      },
      {},
    );
    assert.deepEqual(
      config.modelList.map((d) => [d.modelName, d.provider, d.model]),
      [
        ['bare', 'openai', 'gpt-4o'],
        ['azure', 'azure', 'my-deployment'],
        ['anthropic', 'anthropic', 'claude-3-5-sonnet-20240620'],
        ['nested', 'openai', 'org/custom-model'],
      ],
    );
    assert.equal(config.modelList[1]!.apiVersion, '2024-02-01');
  });

  test('a model_list that is absent or null gives no deployments', () => {
    assert.deepEqual(parseConfig({ model_list: null }, {}).modelList, []);
    assert.deepEqual(parseConfig(null, {}).modelList, []);
  });
});

describe('assistant_settings (passthrough)', () => {
  test('absent: null; openai without api_base: OpenAI itself, timeout 600 s (LiteLLM default)', () => {
    assert.equal(parseConfig({}, {}).passthrough, null);
    assert.deepEqual(parseConfig({ assistant_settings: { custom_llm_provider: 'openai', litellm_params: { api_key: 'os.environ/UP_KEY' } } }, { UP_KEY: 'sk-up' }).passthrough, {
      provider: 'openai',
      apiBase: 'https://api.openai.com/v1',
      apiKey: 'sk-up',
      apiVersion: null,
      timeoutSeconds: 600,
    });
  });

  test('azure: api_base required; api_version and timeout read', () => {
    const config = parseConfig(
      { assistant_settings: { custom_llm_provider: 'azure', litellm_params: { api_base: 'https://r.openai.azure.com', api_key: 'k', api_version: '2024-05-01-preview', timeout: '2.5' } } },
      {},
    );
    assert.deepEqual(config.passthrough, { provider: 'azure', apiBase: 'https://r.openai.azure.com', apiKey: 'k', apiVersion: '2024-05-01-preview', timeoutSeconds: 2.5 });
    assertConfigError(() => parseConfig({ assistant_settings: { custom_llm_provider: 'azure', litellm_params: {} } }, {}), 'assistant_settings.litellm_params.api_base');
  });

  test('bad values are ConfigErrors naming the key; unknown keys are reported as ignored', () => {
    assertConfigError(() => parseConfig({ assistant_settings: { custom_llm_provider: 'anthropic' } }, {}), 'assistant_settings.custom_llm_provider');
    assertConfigError(() => parseConfig({ assistant_settings: { litellm_params: { api_base: 'not a url' } } }, {}), 'assistant_settings.litellm_params.api_base');
    // A URL without its scheme parses as one of scheme `localhost:`: refused at start, not a 500 per request.
    assertConfigError(() => parseConfig({ assistant_settings: { litellm_params: { api_base: 'localhost:4000/v1' } } }, {}), 'assistant_settings.litellm_params.api_base');
    for (const timeout of [0, -1, 'soon', '']) {
      assertConfigError(() => parseConfig({ assistant_settings: { litellm_params: { timeout } } }, {}), 'assistant_settings.litellm_params.timeout');
    }
    const config = parseConfig({ assistant_settings: { litellm_params: { organization: 'org' }, extra: 1 } }, {});
    assert.deepEqual(config.ignoredKeys.sort(), ['assistant_settings.extra', 'assistant_settings.litellm_params.organization']);
  });
});

describe('router_settings and litellm_settings (routing)', () => {
  test('routing_strategy, fallbacks from both sections, cooldown_time and drop_params; an own __proto__ key is a name', () => {
    const config = parseConfig(
      {
        router_settings: { routing_strategy: 'least-busy', fallbacks: [{ gpt: ['claude'] }, { ['__proto__']: ['x'] }], cooldown_time: 2 },
        litellm_settings: { drop_params: true, fallbacks: [{ '*': 'y' }], success_callback: ['langfuse'] },
      },
      {},
    );
    assert.equal(config.router.routingStrategy, 'least-busy');
    assert.equal(config.router.cooldownSeconds, 2);
    assert.equal(config.router.dropParams, true);
    assert.deepEqual({ ...config.router.fallbacks }, { '*': ['y'], gpt: ['claude'], ['__proto__']: ['x'] });
    assert.equal(Object.getPrototypeOf(config.router.fallbacks), null);
    assert.deepEqual(config.ignoredKeys, ['litellm_settings.success_callback']);
  });

  test('bad values are ConfigErrors naming the key', () => {
    assertConfigError(() => parseConfig({ router_settings: { routing_strategy: 'usage-based-routing-v2' } }, {}), 'router_settings.routing_strategy');
    assertConfigError(() => parseConfig({ router_settings: { fallbacks: { gpt: ['claude'] } } }, {}), 'router_settings.fallbacks');
    assertConfigError(() => parseConfig({ litellm_settings: { fallbacks: [{ gpt: [1] }] } }, {}), 'litellm_settings.fallbacks[0].gpt');
    assertConfigError(() => parseConfig({ litellm_settings: { drop_params: 'yes' } }, {}), 'litellm_settings.drop_params');
    assertConfigError(() => parseConfig({ router_settings: { cooldown_time: -1 } }, {}), 'router_settings.cooldown_time');
  });
});
