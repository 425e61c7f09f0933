import { createAmazonBedrock } from '@ai-sdk/amazon-bedrock';
import { createAnthropic } from '@ai-sdk/anthropic';
import { createGoogleGenerativeAI } from '@ai-sdk/google';
import { createMistral } from '@ai-sdk/mistral';
import type { EmbeddingModelV3, LanguageModelV3 } from '@ai-sdk/provider';
import type { AssistdSettings, ModelDeployment, RouterSettings } from '../config.js';
import { createAiSdkEmbeddings, createAiSdkModel, mistralToolCallId, timedFetch, type ProviderAbilities } from './ai-sdk.js';
import { createOpenAICompatibleEmbeddings, createOpenAICompatibleModel } from './openai-compatible.js';
import { Router, type Deployment } from './router.js';
import { ProviderError, type EmbeddingModel, type LanguageModel } from './types.js';
import { redactUrl } from '../redact.js';

type Env = Record<string, string | undefined>;

type Family = 'openai' | 'anthropic' | 'gemini' | 'mistral' | 'bedrock';

interface ProviderInfo {
  family: Family;
  /** The base URL LiteLLM assumes, or null when one must be given. */
  base: string | null;
  /** Environment variables a prefixed model name with no model_list entry is routed with (LiteLLM's). */
  env: { key?: string[]; base?: string[]; version?: string[] };
  /** Reachable with no key at all (a local server). */
  keyless?: boolean;
}

/** LiteLLM's provider prefixes: which wire protocol each speaks, where it lives, and its environment keys. */
const PROVIDERS: Record<string, ProviderInfo> = {
  openai: { family: 'openai', base: 'https://api.openai.com/v1', env: { key: ['OPENAI_API_KEY'], base: ['OPENAI_BASE_URL', 'OPENAI_API_BASE'] } },
  azure: { family: 'openai', base: null, env: { key: ['AZURE_API_KEY', 'AZURE_OPENAI_API_KEY'], base: ['AZURE_API_BASE', 'AZURE_OPENAI_ENDPOINT'], version: ['AZURE_API_VERSION', 'OPENAI_API_VERSION'] } },
  hosted_vllm: { family: 'openai', base: null, env: { key: ['HOSTED_VLLM_API_KEY'], base: ['HOSTED_VLLM_API_BASE'] }, keyless: true },
  openai_like: { family: 'openai', base: null, env: {} },
  custom_openai: { family: 'openai', base: null, env: {} },
  text_completion_openai: { family: 'openai', base: null, env: {} },
  lm_studio: { family: 'openai', base: 'http://127.0.0.1:1234/v1', env: { key: ['LM_STUDIO_API_KEY'], base: ['LM_STUDIO_API_BASE'] } },
  ollama: { family: 'openai', base: 'http://127.0.0.1:11434', env: { base: ['OLLAMA_API_BASE'] }, keyless: true },
  ollama_chat: { family: 'openai', base: 'http://127.0.0.1:11434', env: { base: ['OLLAMA_API_BASE'] }, keyless: true },
  deepseek: { family: 'openai', base: 'https://api.deepseek.com/v1', env: { key: ['DEEPSEEK_API_KEY'], base: ['DEEPSEEK_API_BASE'] } },
  groq: { family: 'openai', base: 'https://api.groq.com/openai/v1', env: { key: ['GROQ_API_KEY'], base: ['GROQ_API_BASE'] } },
  openrouter: { family: 'openai', base: 'https://openrouter.ai/api/v1', env: { key: ['OPENROUTER_API_KEY'], base: ['OPENROUTER_API_BASE'] } },
  together_ai: { family: 'openai', base: 'https://api.together.xyz/v1', env: { key: ['TOGETHERAI_API_KEY', 'TOGETHER_API_KEY'], base: ['TOGETHERAI_API_BASE'] } },
  fireworks_ai: { family: 'openai', base: 'https://api.fireworks.ai/inference/v1', env: { key: ['FIREWORKS_AI_API_KEY', 'FIREWORKS_API_KEY'], base: ['FIREWORKS_API_BASE'] } },
  xai: { family: 'openai', base: 'https://api.x.ai/v1', env: { key: ['XAI_API_KEY'], base: ['XAI_API_BASE'] } },
  perplexity: { family: 'openai', base: 'https://api.perplexity.ai', env: { key: ['PERPLEXITYAI_API_KEY', 'PERPLEXITY_API_KEY'], base: ['PERPLEXITY_API_BASE'] } },
  anthropic: { family: 'anthropic', base: 'https://api.anthropic.com/v1', env: { key: ['ANTHROPIC_API_KEY'], base: ['ANTHROPIC_API_BASE', 'ANTHROPIC_BASE_URL'] } },
  gemini: { family: 'gemini', base: 'https://generativelanguage.googleapis.com/v1beta', env: { key: ['GEMINI_API_KEY', 'GOOGLE_API_KEY'], base: ['GEMINI_API_BASE'] } },
  mistral: { family: 'mistral', base: 'https://api.mistral.ai/v1', env: { key: ['MISTRAL_API_KEY'], base: ['MISTRAL_API_BASE'] } },
  bedrock: { family: 'bedrock', base: null, env: { key: ['AWS_ACCESS_KEY_ID'], base: ['AWS_BEDROCK_RUNTIME_ENDPOINT'] } },
};

const AZURE_DEFAULT_API_VERSION = '2024-10-21';

interface Route extends Deployment {
  modelName: string;
  /** `model_info.mode`, or null. */
  mode: string | null;
  /** `litellm_params.dimensions`, for embedding models that shorten their vectors. */
  dimensions: number | null;
  createEmbeddings(requestedModel: string, dimensions: number | null): EmbeddingModel;
}

/** OpenAI's embedding models: a model_list entry named like one is taken for vector stores. */
const OPENAI_EMBEDDING_MODELS = ['text-embedding-3-large', 'text-embedding-3-small', 'text-embedding-ada-002'];
/** With no config at all, file_search embeds as OpenAI's own did: text-embedding-3-large at 256 dimensions. */
const ZERO_CONFIG_EMBEDDING = { name: 'text-embedding-3-large', dimensions: 256 };

/** The embedding model vector stores use, and the size of its vectors when asked for one. */
export interface EmbeddingChoice {
  name: string;
  dimensions: number | null;
  /** Why this one, for the start-up banner. */
  reason: string;
}

/** LiteLLM users write a provider's root URL; each API lives under its version path. */
function withVersionPath(apiBase: string, version: string): string {
  const trimmed = apiBase.replace(/\/+$/, '');
  return new RegExp(`/${version}$`).test(trimmed) || /\/v\d[\w.]*$/.test(trimmed) ? trimmed : `${trimmed}/${version}`;
}

function stringRecord(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, String(item)]));
}

function positive(value: unknown): number | null {
  const number = Number(value);
  return value !== undefined && value !== null && value !== '' && Number.isFinite(number) && number > 0 ? number : null;
}

const PARALLEL_OFF: Partial<Record<Family, ProviderAbilities['disableParallelToolCalls']>> = {
  anthropic: () => ({ anthropic: { disableParallelToolUse: true } }),
  mistral: () => ({ mistral: { parallelToolCalls: false } }),
};

/** The provider of a prefix, never an inherited member (`constructor/x` is a name, not a provider). */
function providerInfo(prefix: string): ProviderInfo | undefined {
  return Object.hasOwn(PROVIDERS, prefix) ? PROVIDERS[prefix] : undefined;
}

/** The first of `names` set in `env`. */
function fromEnv(env: Env, names: string[] | undefined): string | null {
  return names?.map((variable) => env[variable]).find((value) => value !== undefined && value !== '') ?? null;
}

/**
 * What a wildcard deployment sends upstream for `requested`: the part the `model_name`'s `*` matched
 * takes the place of the `*` in the deployment's model (`anthropic/*` → `anthropic/*` sends
 * `claude-3-haiku` for `anthropic/claude-3-haiku`; `my-*` → `gpt-*` sends `gpt-4o` for `my-4o`).
 */
function wildcardModel(modelName: string, model: string, requested: string): string {
  const star = modelName.indexOf('*');
  const matched = star < 0 ? requested : requested.slice(star, requested.length - (modelName.length - star - 1));
  return model.replace('*', matched);
}

function routeFor(deployment: ModelDeployment, settings: AssistdSettings, router: RouterSettings, log: (message: string) => void, env: Env = {}): Route | string {
  const info = providerInfo(deployment.provider);
  if (!info) return `provider '${deployment.provider}' is not supported (supported: ${Object.keys(PROVIDERS).join(', ')})`;
  const timeoutSeconds = positive(deployment.params.timeout) ?? settings.modelTimeoutSeconds;
  const timeoutMs = timeoutSeconds * 1000;
  const headers = stringRecord(deployment.params.extra_headers);
  const wildcard = deployment.model.includes('*');
  const upstreamModel = (requested: string) => (wildcard ? wildcardModel(deployment.modelName, deployment.model, requested) : deployment.model);
  const dimensions = positive(deployment.params.dimensions);
  const common = {
    modelName: deployment.modelName,
    mode: deployment.mode,
    dimensions: dimensions !== null && Number.isInteger(dimensions) ? dimensions : null,
    weight: positive(deployment.params.weight) ?? positive(deployment.params.rpm) ?? positive(deployment.params.tpm) ?? 1,
    rpm: positive(deployment.params.rpm),
    tpm: positive(deployment.params.tpm),
  };
  const dropParams = typeof deployment.params.drop_params === 'boolean' ? deployment.params.drop_params : router.dropParams;

  if (info.family === 'openai') {
    const query: Record<string, string> = {};
    let baseURL = deployment.apiBase ?? info.base;
    if (baseURL === null) return `litellm_params.api_base is required for provider '${deployment.provider}'`;
    let apiKey = deployment.apiKey;
    if (deployment.provider === 'azure') {
      // Azure OpenAI: the deployment is in the path, the version in the query, the key in `api-key`.
      baseURL = `${baseURL.replace(/\/+$/, '')}/openai/deployments/${encodeURIComponent(deployment.model)}`;
      query['api-version'] = deployment.apiVersion ?? AZURE_DEFAULT_API_VERSION;
      if (apiKey) headers['api-key'] = apiKey;
      apiKey = null;
    } else if (deployment.provider === 'ollama' || deployment.provider === 'ollama_chat') {
      // Ollama's OpenAI-compatible API lives under /v1 of the root URL LiteLLM users write
      baseURL = withVersionPath(baseURL, 'v1');
    }
    if (deployment.params.organization) headers['OpenAI-Organization'] = String(deployment.params.organization);
    const connection = { baseURL, apiKey, headers, query, timeoutMs };
    return {
      ...common,
      describe: `${deployment.provider}/${deployment.model} at ${redactUrl(baseURL)}`,
      createEmbeddings: (requestedModel, dimensionsWanted) =>
        createOpenAICompatibleEmbeddings({ ...connection, model: upstreamModel(requestedModel), dimensions: dimensionsWanted }),
      create: (requestedModel) => createOpenAICompatibleModel({ ...connection, model: upstreamModel(requestedModel), idleTimeoutMs: timeoutMs }),
    };
  }

  const fetch = timedFetch(timeoutMs, timeoutMs);
  // As in LiteLLM, an entry without api_key uses the provider's environment key.
  const apiKey = deployment.apiKey ?? fromEnv(env, info.env.key) ?? undefined;
  if (apiKey === undefined && info.family !== 'bedrock') {
    return `no api_key (litellm_params.api_key, or ${info.env.key?.join(' or ')} in the environment)`;
  }
  let provider: {
    languageModel(id: string): LanguageModelV3;
    embeddingModel?(id: string): EmbeddingModelV3;
  };
  let baseURL: string;
  if (info.family === 'anthropic') {
    baseURL = withVersionPath(deployment.apiBase ?? info.base!, 'v1');
    provider = createAnthropic({ baseURL, apiKey, headers, fetch });
  } else if (info.family === 'gemini') {
    baseURL = withVersionPath(deployment.apiBase ?? info.base!, 'v1beta');
    provider = createGoogleGenerativeAI({ baseURL, apiKey, headers, fetch });
  } else if (info.family === 'mistral') {
    baseURL = withVersionPath(deployment.apiBase ?? info.base!, 'v1');
    provider = createMistral({ baseURL, apiKey, headers, fetch });
  } else {
    const region = String(deployment.params.aws_region_name ?? env.AWS_REGION_NAME ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1');
    baseURL = deployment.apiBase ?? env.AWS_BEDROCK_RUNTIME_ENDPOINT ?? `https://bedrock-runtime.${region}.amazonaws.com`;
    const accessKeyId = deployment.params.aws_access_key_id ?? env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = deployment.params.aws_secret_access_key ?? env.AWS_SECRET_ACCESS_KEY;
    if (typeof accessKeyId !== 'string' || typeof secretAccessKey !== 'string') {
      return 'litellm_params.aws_access_key_id and aws_secret_access_key are required for provider bedrock (or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)';
    }
    const token = deployment.params.aws_session_token ?? env.AWS_SESSION_TOKEN;
    const sessionToken = typeof token === 'string' ? token : undefined;
    provider = createAmazonBedrock({ region, baseURL, accessKeyId, secretAccessKey, sessionToken, headers, fetch });
  }
  // Anthropic's (and Claude's on Bedrock) temperatures run 0 to 1, Gemini's 0 to 2, Mistral's 0 to 1.5.
  const temperatureRange: [number, number] = info.family === 'gemini' ? [0, 2] : info.family === 'mistral' ? [0, 1.5] : [0, 1];
  const abilities: ProviderAbilities = {
    disableParallelToolCalls: PARALLEL_OFF[info.family] ?? null,
    reasoningEffort: false,
    temperatureRange,
    ...(info.family === 'mistral' ? { toolCallId: mistralToolCallId } : {}),
  };
  const defaultMaxTokens = positive(deployment.params.max_tokens);
  return {
    ...common,
    describe: `${deployment.provider}/${deployment.model} at ${redactUrl(baseURL)}`,
    createEmbeddings: (requestedModel) => {
      // Gemini's and Mistral's embeddings are served; Bedrock's (InvokeModel, per model family) are not.
      if (!provider.embeddingModel || (info.family !== 'gemini' && info.family !== 'mistral')) {
        throw new ProviderError(`provider '${deployment.provider}' has no embeddings here; use a gemini/, mistral/ or OpenAI-compatible embedding model`, 400);
      }
      return createAiSdkEmbeddings(deployment.provider, provider.embeddingModel(upstreamModel(requestedModel)));
    },
    create: (requestedModel) =>
      createAiSdkModel({
        provider: deployment.provider,
        model: provider.languageModel(upstreamModel(requestedModel)),
        abilities,
        dropParams,
        defaultMaxTokens,
        warn: log,
      }),
  };
}

/** The prefix of a provider-prefixed name (`anthropic/claude-…` → `anthropic`), or null. */
function prefixOf(name: string): string | null {
  const slash = name.indexOf('/');
  return slash > 0 && slash < name.length - 1 ? name.slice(0, slash) : null;
}

/**
 * One wildcard deployment (`prefix/*` → `prefix/*`) made from the provider's environment keys, or
 * null when they are not set: every `prefix/<model>` routes through it with the prefix stripped.
 */
function environmentDeployment(prefix: string, env: Env): ModelDeployment | null {
  const info = providerInfo(prefix);
  if (!info) return null;
  const apiKey = fromEnv(env, info.env.key);
  const apiBase = fromEnv(env, info.env.base);
  if (!apiKey && !info.keyless && !(prefix === 'openai' && apiBase)) return null;
  if (info.base === null && apiBase === null && info.family !== 'bedrock') return null;
  if (info.family === 'bedrock' && !env.AWS_SECRET_ACCESS_KEY) return null;
  return {
    modelName: `${prefix}/*`,
    provider: prefix,
    model: '*',
    apiBase,
    apiKey: info.family === 'bedrock' ? null : apiKey,
    apiVersion: fromEnv(env, info.env.version),
    params: {},
    mode: null,
  };
}

function matches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  const expression = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return expression.test(name);
}

/** The prefixes a client may name with no model_list entry, and what each is reached with (for the banner). */
function environmentProviders(env: Env): string[] {
  return Object.entries(PROVIDERS).flatMap(([prefix, info]) => {
    if (prefix === 'ollama_chat') return [];
    const deployment = environmentDeployment(prefix, env);
    if (!deployment) return [];
    const via = info.env.key?.find((variable) => env[variable]) ?? info.env.base?.find((variable) => env[variable]);
    return [`${prefix}/ (${via ?? `no key, ${redactUrl(deployment.apiBase ?? info.base ?? '')}`})`];
  });
}

const DEFAULT_ROUTER: RouterSettings = { routingStrategy: 'simple-shuffle', fallbacks: {}, cooldownSeconds: 5, dropParams: false };

/**
 * Routes a model name to deployments, as LiteLLM's router does: exact `model_name` first, then
 * wildcard names (`*`, `gpt-*`), then a provider-prefixed name (`anthropic/claude-…`) straight to that
 * provider with its environment key. Without a model_list, OPENAI_API_KEY and/or OPENAI_BASE_URL route
 * every other name to that endpoint. Several deployments under one name share calls (see Router).
 */
export class ModelRegistry {
  private readonly exact = new Map<string, Route[]>();
  private readonly wildcards: Route[] = [];
  /** The zero-config catch-all (OPENAI_API_KEY / OPENAI_BASE_URL with no model_list): tried last. */
  private readonly catchAll: Route[] = [];
  private readonly fromEnvironment = new Map<string, Route[]>();
  private readonly router: Router;
  readonly warnings: string[] = [];
  /** Provider prefixes reachable by name alone (their environment key is set), for the banner. */
  readonly environmentProviders: string[];

  constructor(
    deployments: ModelDeployment[],
    settings: AssistdSettings,
    private readonly env: Env = process.env,
    private readonly routerSettings: RouterSettings = DEFAULT_ROUTER,
    private readonly log: (message: string) => void = () => {},
  ) {
    this.settings = settings;
    deployments.forEach((deployment, index) => {
      const route = routeFor(deployment, settings, routerSettings, log, env);
      if (typeof route === 'string') {
        this.warnings.push(`model_list[${index}] (${deployment.modelName}): ${route}; requests for it get 400`);
        return;
      }
      if (deployment.modelName.includes('*')) this.wildcards.push(route);
      else this.exact.set(deployment.modelName, [...(this.exact.get(deployment.modelName) ?? []), route]);
    });
    // With no model_list: OpenAI with OPENAI_API_KEY, or any OpenAI-compatible server at
    // OPENAI_BASE_URL (a local Ollama or vLLM needs no key).
    if (deployments.length === 0 && (env.OPENAI_API_KEY || env.OPENAI_BASE_URL)) {
      const route = routeFor(
        {
          modelName: '*',
          provider: 'openai',
          model: '*',
          apiBase: env.OPENAI_BASE_URL ?? null,
          apiKey: env.OPENAI_API_KEY || null,
          apiVersion: null,
          params: {},
          mode: null,
        },
        settings,
        routerSettings,
        log,
        env,
      );
      if (typeof route !== 'string') this.catchAll.push(route);
    }
    this.environmentProviders = environmentProviders(env);
    for (const [name, targets] of Object.entries(routerSettings.fallbacks)) {
      for (const target of targets) {
        if (!this.has(target)) this.warnings.push(`fallbacks: '${target}' (a fallback of '${name}') routes to no deployment`);
      }
    }
    this.router = new Router({
      strategy: routerSettings.routingStrategy,
      cooldownMs: routerSettings.cooldownSeconds * 1000,
      fallbacks: routerSettings.fallbacks,
      deployments: (name) => this.routes(name),
      log,
    });
    this.embedding = this.chooseEmbedding(deployments, settings, env);
  }

  private readonly settings: AssistdSettings;

  /** The embedding model new vector stores get, or null: full-text search alone. */
  readonly embedding: EmbeddingChoice | null;

  private chooseEmbedding(deployments: ModelDeployment[], settings: AssistdSettings, env: Env): EmbeddingChoice | null {
    if (settings.embeddingModel !== null) {
      if (!this.has(settings.embeddingModel)) {
        this.warnings.push(`assistd_settings.embedding_model '${settings.embeddingModel}' routes to no model_list entry; file_search uses full-text search alone`);
        return null;
      }
      const route = this.routes(settings.embeddingModel)[0]!;
      return { name: settings.embeddingModel, dimensions: route.dimensions, reason: 'assistd_settings.embedding_model' };
    }
    const routes = [...this.exact.values()].flat();
    const marked = routes.find((route) => route.mode === 'embedding');
    if (marked) return { name: marked.modelName, dimensions: marked.dimensions, reason: 'model_info.mode: embedding' };
    const named = routes.find((route) => OPENAI_EMBEDDING_MODELS.includes(route.modelName));
    if (named) return { name: named.modelName, dimensions: named.dimensions, reason: "named like one of OpenAI's embedding models" };
    if (deployments.length === 0 && env.OPENAI_API_KEY) return { ...ZERO_CONFIG_EMBEDDING, reason: 'OPENAI_API_KEY with no config, as OpenAI did' };
    return null;
  }

  /** An embeddings client for `name` (a model_name), or undefined when it routes nowhere. */
  resolveEmbeddings(name: string, dimensions: number | null): EmbeddingModel | undefined {
    const routes = this.routes(name);
    if (routes.length === 0) return undefined;
    return routes[0]!.createEmbeddings(name, dimensions);
  }

  private routes(name: string): Route[] {
    const exact = this.exact.get(name);
    if (exact) return exact;
    const wildcards = this.wildcards.filter((route) => matches(route.modelName, name));
    if (wildcards.length > 0) return wildcards;
    const environment = this.environmentRoutes(name);
    if (environment.length > 0) return environment;
    return this.catchAll.filter((route) => matches(route.modelName, name));
  }

  private environmentRoutes(name: string): Route[] {
    const prefix = prefixOf(name);
    if (prefix === null || !providerInfo(prefix)) return [];
    // One route per provider, made once: names clients make up cannot grow this map.
    let routes = this.fromEnvironment.get(prefix);
    if (!routes) {
      const deployment = environmentDeployment(prefix, this.env);
      const route = deployment ? routeFor(deployment, this.settings, this.routerSettings, this.log, this.env) : null;
      routes = route && typeof route !== 'string' ? [route] : [];
      this.fromEnvironment.set(prefix, routes);
    }
    return routes;
  }

  has(name: string): boolean {
    return this.routes(name).length > 0;
  }

  /** A model for `name`, or undefined when it routes nowhere. */
  resolve(name: string): LanguageModel | undefined {
    return this.router.model(name);
  }

  /** One line per route for the start-up banner. */
  describe(): string[] {
    return [...[...this.exact.values()].flat(), ...this.wildcards, ...this.catchAll].map((route) => `${route.modelName} -> ${route.describe}`);
  }
}
