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
  /** Config keys that were read but are not used, by key path. */
  ignoredKeys: string[];
  source: string | null;
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

/** Parse a LiteLLM-compatible config document (already loaded from YAML). */
export function parseConfig(document: unknown, env: Env = process.env, source: string | null = null): Config {
  if (document === undefined || document === null) document = {};
  if (!isRecord(document)) throw new ConfigError('', 'the config file must be a YAML mapping');
  const ignoredKeys: string[] = [];
  for (const key of Object.keys(document)) {
    if (key !== 'model_list' && key !== 'general_settings' && key !== 'assistd_settings') ignoredKeys.push(key);
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
