import { SANDBOX_DEFAULTS, type SandboxSettings } from './sandbox/sandbox.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';

/** One `model_list` entry: the public `model_name` and what it routes to. */
export interface ModelDeployment {
  modelName: string;
  /** The provider prefix of `litellm_params.model` (`openai/gpt-4o` → `openai`); `openai` when absent. */
  provider: string;
  /** The upstream model name without the provider prefix. */
  model: string;
  apiBase: string | null;
  apiKey: string | null;
  apiVersion: string | null;
  /** Every `litellm_params` value, secrets resolved, for providers that read more. */
  params: Record<string, unknown>;
  /** `model_info.mode` (LiteLLM's `chat`, `embedding`, ...), when given. */
  mode: string | null;
}

export interface Config {
  modelList: ModelDeployment[];
  masterKey: string | null;
  databaseUrl: string | null;
  maxRequestBytes: number;
  settings: AssistdSettings;
  /** LiteLLM's `router_settings` and `litellm_settings` routing keys. */
  router: RouterSettings;
  /** `assistant_settings`: forward every Assistants route to this upstream instead of running it here. */
  passthrough: PassthroughSettings | null;
  /** Config keys that were read but are not used, by key path. */
  ignoredKeys: string[];
  source: string | null;
}

/** How several deployments of one model_name share the load, and what happens when one fails. */
export interface RouterSettings {
  /** LiteLLM's `routing_strategy`: `simple-shuffle` (by weight, the default) or `least-busy`. */
  routingStrategy: 'simple-shuffle' | 'least-busy';
  /** `fallbacks: [{gpt-4o: [claude-3-5-sonnet]}]`: model_names tried in order when one fails. */
  fallbacks: Record<string, string[]>;
  /** A deployment that failed with a retryable error is skipped this long while others are free. */
  cooldownSeconds: number;
  /** Parameters a provider lacks are dropped instead of failing the run. */
  dropParams: boolean;
}

export interface PassthroughSettings {
  provider: 'openai' | 'azure';
  apiBase: string;
  apiKey: string | null;
  apiVersion: string | null;
  /** `litellm_params.timeout`: an upstream silent this long (no response yet, or a stalled one) is given up on. */
  timeoutSeconds: number;
}

/** assistd's own knobs (`assistd_settings:`), each with a default. */
export interface AssistdSettings {
  /** How long a run may wait in requires_action before it expires. */
  runExpirySeconds: number;
  /** Sent as `openai-poll-after-ms` on run reads: how soon the SDKs' pollers ask again. */
  pollAfterMs: number;
  /** Upstream model calls: no response headers (or no chunk mid-stream) within this → retry. */
  modelTimeoutSeconds: number;
  /** Retries of a retryable upstream failure before the run fails. */
  modelMaxRetries: number;
  /** A run's lease: a process that stops renewing it (dead, stalled) loses the run this long after its last renewal. */
  runLeaseSeconds: number;
  /** A request's headers must arrive within this (from its first byte); else 408. 0: no limit. */
  headersTimeoutSeconds: number;
  /** A request, body included, must arrive within this; else 408. Responses (streams) are not limited. 0: no limit. */
  requestTimeoutSeconds: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutSeconds: number;
  /** At SIGTERM/SIGINT, how long requests and runs in flight may take to finish. */
  shutdownGraceSeconds: number;
  /** The largest file `POST /files` accepts. */
  maxUploadSizeMb: number;
  /** How long an upload's body may take in all (a stall of request_timeout_seconds ends it sooner). */
  uploadTimeoutSeconds: number;
  /** The `model_name` vector stores embed with; null: found in model_list (see ModelRegistry). */
  embeddingModel: string | null;
  /** code_interpreter's sandbox: `code_interpreter_*` keys. */
  codeInterpreter: SandboxSettings;
}

const SETTINGS_DEFAULTS: AssistdSettings = {
  runExpirySeconds: 600,
  pollAfterMs: 25,
  modelTimeoutSeconds: 120,
  modelMaxRetries: 3,
  runLeaseSeconds: 15,
  headersTimeoutSeconds: 10,
  requestTimeoutSeconds: 20,
  // Longer than the 60 s idle timeout of common load balancers, so they never reuse a closed connection.
  keepAliveTimeoutSeconds: 72,
  // Inside the 30 s an orchestrator (Kubernetes) waits after SIGTERM before it kills.
  shutdownGraceSeconds: 25,
  maxUploadSizeMb: 512,
  uploadTimeoutSeconds: 3600,
  embeddingModel: null,
  codeInterpreter: SANDBOX_DEFAULTS,
};

const SANDBOX_NUMBERS: Record<string, keyof SandboxSettings> = {
  code_interpreter_timeout_seconds: 'timeoutSeconds',
  code_interpreter_cpu_seconds: 'cpuSeconds',
  code_interpreter_memory_mb: 'memoryMb',
  code_interpreter_max_processes: 'maxProcesses',
  code_interpreter_max_output_kb: 'maxOutputKb',
  code_interpreter_max_file_mb: 'maxFileMb',
  code_interpreter_tmp_mb: 'tmpMb',
  code_interpreter_idle_timeout_seconds: 'idleTimeoutSeconds',
  code_interpreter_max_kernels: 'maxKernels',
};
const SANDBOX_DRIVERS = ['bubblewrap', 'unsafe_local', 'disabled'] as const;

const SETTING_KEYS: Record<string, Exclude<keyof AssistdSettings, 'embeddingModel' | 'codeInterpreter'>> = {
  run_expiry_seconds: 'runExpirySeconds',
  poll_after_ms: 'pollAfterMs',
  model_timeout_seconds: 'modelTimeoutSeconds',
  model_max_retries: 'modelMaxRetries',
  run_lease_seconds: 'runLeaseSeconds',
  headers_timeout_seconds: 'headersTimeoutSeconds',
  request_timeout_seconds: 'requestTimeoutSeconds',
  keep_alive_timeout_seconds: 'keepAliveTimeoutSeconds',
  shutdown_grace_seconds: 'shutdownGraceSeconds',
  max_upload_size_mb: 'maxUploadSizeMb',
  upload_timeout_seconds: 'uploadTimeoutSeconds',
};

function parseSettings(value: unknown, ignored: string[]): AssistdSettings {
  const settings = { ...SETTINGS_DEFAULTS, codeInterpreter: { ...SANDBOX_DEFAULTS } };
  if (value === undefined || value === null) return settings;
  if (!isRecord(value)) throw new ConfigError('assistd_settings', 'expected a mapping');
  for (const [key, raw] of Object.entries(value)) {
    if (key === 'embedding_model') {
      if (typeof raw !== 'string' || raw === '') throw new ConfigError('assistd_settings.embedding_model', 'expected a model_name');
      settings.embeddingModel = raw;
      continue;
    }
    if (key === 'code_interpreter_sandbox') {
      if (!SANDBOX_DRIVERS.includes(raw as (typeof SANDBOX_DRIVERS)[number])) throw new ConfigError(`assistd_settings.${key}`, `expected one of ${SANDBOX_DRIVERS.join(', ')}`);
      settings.codeInterpreter.driver = raw as SandboxSettings['driver'];
      continue;
    }
    if (key === 'code_interpreter_python' || key === 'code_interpreter_sessions_dir') {
      if (typeof raw !== 'string' || raw === '') throw new ConfigError(`assistd_settings.${key}`, 'expected a path');
      if (key === 'code_interpreter_python') settings.codeInterpreter.python = raw;
      else settings.codeInterpreter.sessionsDir = raw;
      continue;
    }
    const sandboxField = SANDBOX_NUMBERS[key];
    if (sandboxField) {
      const number = Number(raw);
      if (raw === null || raw === '' || !Number.isFinite(number) || number <= 0) throw new ConfigError(`assistd_settings.${key}`, 'expected a positive number');
      (settings.codeInterpreter as unknown as Record<string, number>)[sandboxField] = number;
      continue;
    }
    const field = SETTING_KEYS[key] as Exclude<keyof AssistdSettings, 'embeddingModel' | 'codeInterpreter'> | undefined;
    if (!field) {
      ignored.push(`assistd_settings.${key}`);
      continue;
    }
    const number = Number(raw);
    if (raw === null || raw === '' || !Number.isFinite(number) || number < 0) {
      throw new ConfigError(`assistd_settings.${key}`, 'expected a non-negative number');
    }
    settings[field] = number;
  }
  return settings;
}

export class ConfigError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'ConfigError';
  }
}

const DEFAULT_MAX_REQUEST_MB = 10;
const ENV_REFERENCE = 'os.environ/';

type Env = Record<string, string | undefined>;

/** Replace every `os.environ/NAME` string with the variable's value, failing on unset ones. */
function resolveSecrets(value: unknown, path: string, env: Env): unknown {
  if (typeof value === 'string' && value.startsWith(ENV_REFERENCE)) {
    const name = value.slice(ENV_REFERENCE.length);
    const resolved = env[name];
    if (resolved === undefined) throw new ConfigError(path, `environment variable ${name} is not set`);
    return resolved;
  }
  if (Array.isArray(value)) return value.map((item, index) => resolveSecrets(item, `${path}[${index}]`, env));
  if (isRecord(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, resolveSecrets(item, path ? `${path}.${key}` : key, env)]),
    );
  }
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(record: Record<string, unknown>, key: string, path: string): string | null {
  const value = record[key];
  if (value === undefined || value === null) return null;
  if (typeof value === 'number') return String(value);
  if (typeof value !== 'string') throw new ConfigError(`${path}.${key}`, 'expected a string');
  return value;
}

const USED_LITELLM_PARAMS = new Set(['model', 'api_base', 'api_key', 'api_version']);
// Read by later provider work (timeouts, headers); not reported as ignored.
const KNOWN_LITELLM_PARAMS = new Set([
  ...USED_LITELLM_PARAMS,
  // embedding models: the size of the vectors asked for (OpenAI's text-embedding-3 models)
  'dimensions',
  'timeout',
  'stream_timeout',
  'max_retries',
  'extra_headers',
  'organization',
  // routing (LiteLLM's router): load share and limits per deployment
  'rpm',
  'tpm',
  'weight',
  'drop_params',
  // Anthropic requires max_tokens; LiteLLM lets a deployment set it
  'max_tokens',
  // AWS Bedrock
  'aws_access_key_id',
  'aws_secret_access_key',
  'aws_session_token',
  'aws_region_name',
]);
const USED_GENERAL_SETTINGS = new Set(['master_key', 'database_url', 'max_request_size_mb']);

function parseModelList(value: unknown, ignored: string[]): ModelDeployment[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new ConfigError('model_list', 'expected a list');
  return value.map((entry, index) => {
    const path = `model_list[${index}]`;
    if (!isRecord(entry)) throw new ConfigError(path, 'expected a mapping with model_name and litellm_params');
    const modelName = entry.model_name;
    if (typeof modelName !== 'string' || modelName === '') {
      throw new ConfigError(`${path}.model_name`, 'required, a non-empty string');
    }
    const params = entry.litellm_params;
    if (!isRecord(params)) throw new ConfigError(`${path}.litellm_params`, 'required, a mapping');
    const target = params.model;
    if (typeof target !== 'string' || target === '') {
      throw new ConfigError(`${path}.litellm_params.model`, 'required, a string such as "openai/gpt-4o"');
    }
    for (const key of Object.keys(entry)) {
      if (key !== 'model_name' && key !== 'litellm_params' && key !== 'model_info') ignored.push(`${path}.${key}`);
    }
    const info = entry.model_info;
    if (info !== undefined && info !== null && !isRecord(info)) throw new ConfigError(`${path}.model_info`, 'expected a mapping');
    for (const key of Object.keys(info ?? {})) {
      if (key !== 'mode') ignored.push(`${path}.model_info.${key}`);
    }
    for (const key of Object.keys(params)) {
      if (!KNOWN_LITELLM_PARAMS.has(key)) ignored.push(`${path}.litellm_params.${key}`);
    }
    const slash = target.indexOf('/');
    const provider = slash > 0 ? target.slice(0, slash) : 'openai';
    const model = slash > 0 ? target.slice(slash + 1) : target;
    if (model === '') throw new ConfigError(`${path}.litellm_params.model`, `names no model after the provider prefix: "${target}"`);
    return {
      modelName,
      provider,
      model,
      apiBase: optionalString(params, 'api_base', `${path}.litellm_params`),
      apiKey: optionalString(params, 'api_key', `${path}.litellm_params`),
      apiVersion: optionalString(params, 'api_version', `${path}.litellm_params`),
      params,
      mode: isRecord(info) ? optionalString(info, 'mode', `${path}.model_info`) : null,
    };
  });
}

const TOP_LEVEL_KEYS = new Set(['model_list', 'general_settings', 'assistd_settings', 'router_settings', 'litellm_settings', 'assistant_settings']);
const ROUTING_STRATEGIES = ['simple-shuffle', 'least-busy'] as const;
// LiteLLM's default cooldown after a deployment fails.
const DEFAULT_COOLDOWN_SECONDS = 5;

function parseFallbacks(value: unknown, path: string): Record<string, string[]> {
  if (value === undefined || value === null) return {};
  if (!Array.isArray(value)) throw new ConfigError(path, 'expected a list such as [{"gpt-4o": ["claude-3-5-sonnet"]}]');
  const fallbacks: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  value.forEach((entry, index) => {
    if (!isRecord(entry)) throw new ConfigError(`${path}[${index}]`, 'expected a mapping of model_name to a list of model_names');
    for (const [name, targets] of Object.entries(entry)) {
      const list = typeof targets === 'string' ? [targets] : targets;
      if (!Array.isArray(list) || !list.every((item) => typeof item === 'string' && item !== '')) {
        throw new ConfigError(`${path}[${index}].${name}`, 'expected a list of model_names');
      }
      fallbacks[name] = [...(Object.hasOwn(fallbacks, name) ? fallbacks[name]! : []), ...(list as string[])];
    }
  });
  return fallbacks;
}

/** `router_settings` and `litellm_settings` both carry routing keys in LiteLLM's configs; the router's win. */
function parseRouter(routerValue: unknown, litellmValue: unknown, ignored: string[]): RouterSettings {
  const router: RouterSettings = { routingStrategy: 'simple-shuffle', fallbacks: Object.create(null) as Record<string, string[]>, cooldownSeconds: DEFAULT_COOLDOWN_SECONDS, dropParams: false };
  const sections: [string, unknown][] = [
    ['litellm_settings', litellmValue],
    ['router_settings', routerValue],
  ];
  for (const [section, value] of sections) {
    if (value === undefined || value === null) continue;
    if (!isRecord(value)) throw new ConfigError(section, 'expected a mapping');
    for (const [key, raw] of Object.entries(value)) {
      const path = `${section}.${key}`;
      if (key === 'routing_strategy') {
        if (!ROUTING_STRATEGIES.includes(raw as (typeof ROUTING_STRATEGIES)[number])) throw new ConfigError(path, `expected one of ${ROUTING_STRATEGIES.join(', ')}`);
        router.routingStrategy = raw as RouterSettings['routingStrategy'];
      } else if (key === 'fallbacks') {
        router.fallbacks = Object.assign(Object.create(null) as Record<string, string[]>, router.fallbacks, parseFallbacks(raw, path));
      } else if (key === 'cooldown_time') {
        const number = Number(raw);
        if (raw === null || raw === '' || !Number.isFinite(number) || number < 0) throw new ConfigError(path, 'expected a non-negative number of seconds');
        router.cooldownSeconds = number;
      } else if (key === 'drop_params') {
        if (typeof raw !== 'boolean') throw new ConfigError(path, 'expected true or false');
        router.dropParams = raw;
      } else {
        ignored.push(path);
      }
    }
  }
  return router;
}

// LiteLLM's default request timeout.
const DEFAULT_PASSTHROUGH_TIMEOUT_SECONDS = 600;

function parsePassthrough(value: unknown, ignored: string[]): PassthroughSettings | null {
  if (value === undefined || value === null) return null;
  if (!isRecord(value)) throw new ConfigError('assistant_settings', 'expected a mapping with custom_llm_provider and litellm_params');
  for (const key of Object.keys(value)) {
    if (key !== 'custom_llm_provider' && key !== 'litellm_params') ignored.push(`assistant_settings.${key}`);
  }
  const provider = value.custom_llm_provider ?? 'openai';
  if (provider !== 'openai' && provider !== 'azure') throw new ConfigError('assistant_settings.custom_llm_provider', 'expected openai or azure');
  const params = value.litellm_params ?? {};
  if (!isRecord(params)) throw new ConfigError('assistant_settings.litellm_params', 'expected a mapping');
  for (const key of Object.keys(params)) {
    if (!['api_base', 'api_key', 'api_version', 'timeout'].includes(key)) ignored.push(`assistant_settings.litellm_params.${key}`);
  }
  const path = 'assistant_settings.litellm_params';
  const apiBase = optionalString(params, 'api_base', path) ?? (provider === 'openai' ? 'https://api.openai.com/v1' : null);
  if (apiBase === null) throw new ConfigError(`${path}.api_base`, 'required for custom_llm_provider azure');
  let protocol: string;
  try {
    protocol = new URL(apiBase).protocol;
  } catch {
    throw new ConfigError(`${path}.api_base`, `not a URL: ${apiBase}`);
  }
  // `localhost:4000/v1` parses as a URL of scheme `localhost:`
  if (protocol !== 'http:' && protocol !== 'https:') throw new ConfigError(`${path}.api_base`, `expected an http:// or https:// URL, not ${apiBase}`);
  let timeoutSeconds = DEFAULT_PASSTHROUGH_TIMEOUT_SECONDS;
  if (params.timeout !== undefined && params.timeout !== null) {
    timeoutSeconds = Number(params.timeout);
    if (params.timeout === '' || !Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new ConfigError(`${path}.timeout`, 'expected a positive number of seconds');
  }
  return { provider, apiBase, apiKey: optionalString(params, 'api_key', path), apiVersion: optionalString(params, 'api_version', path), timeoutSeconds };
}

/** Parse a LiteLLM-compatible config document (already loaded from YAML). */
export function parseConfig(document: unknown, env: Env = process.env, source: string | null = null): Config {
  if (document === undefined || document === null) document = {};
  if (!isRecord(document)) throw new ConfigError('', 'the config file must be a YAML mapping');
  const ignoredKeys: string[] = [];
  for (const key of Object.keys(document)) {
    if (!TOP_LEVEL_KEYS.has(key)) ignoredKeys.push(key);
  }
  // Secrets are resolved only in the sections assistd reads: an unset variable named by an
  // ignored LiteLLM setting must not stop the start.
  const modelList = parseModelList(resolveSecrets(document.model_list, 'model_list', env), ignoredKeys);

  const general = resolveSecrets(document.general_settings ?? {}, 'general_settings', env);
  if (!isRecord(general)) throw new ConfigError('general_settings', 'expected a mapping');
  for (const key of Object.keys(general)) {
    if (!USED_GENERAL_SETTINGS.has(key)) ignoredKeys.push(`general_settings.${key}`);
  }
  const masterKey = optionalString(general, 'master_key', 'general_settings') ?? nonEmpty(env.ASSISTD_MASTER_KEY);
  const databaseUrl = optionalString(general, 'database_url', 'general_settings') ?? nonEmpty(env.DATABASE_URL);

  let maxRequestMb = DEFAULT_MAX_REQUEST_MB;
  if (general.max_request_size_mb !== undefined && general.max_request_size_mb !== null) {
    const value = Number(general.max_request_size_mb);
    if (!Number.isFinite(value) || value <= 0) {
      throw new ConfigError('general_settings.max_request_size_mb', 'expected a positive number');
    }
    maxRequestMb = value;
  }

  return {
    modelList,
    masterKey: masterKey === '' ? null : masterKey,
    databaseUrl,
    maxRequestBytes: Math.floor(maxRequestMb * 1024 * 1024),
    settings: parseSettings(resolveSecrets(document.assistd_settings, 'assistd_settings', env), ignoredKeys),
    router: parseRouter(resolveSecrets(document.router_settings, 'router_settings', env), resolveSecrets(document.litellm_settings, 'litellm_settings', env), ignoredKeys),
    passthrough: parsePassthrough(resolveSecrets(document.assistant_settings, 'assistant_settings', env), ignoredKeys),
    ignoredKeys,
    source,
  };
}

function nonEmpty(value: string | undefined): string | null {
  return value === undefined || value === '' ? null : value;
}

export function loadConfig(file: string | undefined, env: Env = process.env): Config {
  if (file === undefined) return parseConfig({}, env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError('', `cannot read config file ${file}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    const detail = error instanceof YAMLParseError ? error.message : String(error);
    throw new ConfigError('', `${file} is not valid YAML: ${detail}`);
  }
  return parseConfig(document, env, file);
}
