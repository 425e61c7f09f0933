import type { AssistdSettings, ModelDeployment } from '../config.js';
import { createOpenAICompatibleEmbeddings, createOpenAICompatibleModel } from './openai-compatible.js';
import type { EmbeddingModel, LanguageModel } from './types.js';
import { redactUrl } from '../redact.js';

type Env = Record<string, string | undefined>;

/** Providers that speak OpenAI's chat completions, with the base URL LiteLLM assumes for each. */
const OPENAI_COMPATIBLE: Record<string, string | null> = {
  openai: 'https://api.openai.com/v1',
  azure: null,
  hosted_vllm: null,
  openai_like: null,
  custom_openai: null,
  text_completion_openai: null,
  lm_studio: 'http://127.0.0.1:1234/v1',
  ollama: 'http://127.0.0.1:11434/v1',
  ollama_chat: 'http://127.0.0.1:11434/v1',
  deepseek: 'https://api.deepseek.com/v1',
  groq: 'https://api.groq.com/openai/v1',
  mistral: 'https://api.mistral.ai/v1',
  openrouter: 'https://openrouter.ai/api/v1',
  together_ai: 'https://api.together.xyz/v1',
  fireworks_ai: 'https://api.fireworks.ai/inference/v1',
  xai: 'https://api.x.ai/v1',
  perplexity: 'https://api.perplexity.ai',
};

const AZURE_DEFAULT_API_VERSION = '2024-10-21';

interface Route {
  modelName: string;
  describe: string;
  /** `model_info.mode`, or null. */
  mode: string | null;
  /** `litellm_params.dimensions`, for embedding models that shorten their vectors. */
  dimensions: number | null;
  create(requestedModel: string): LanguageModel;
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

function ollamaBase(apiBase: string): string {
  // LiteLLM users write Ollama's root URL; its OpenAI-compatible API lives under /v1
  return /\/v1\/?$/.test(apiBase) ? apiBase : `${apiBase.replace(/\/+$/, '')}/v1`;
}

function stringRecord(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, String(item)]));
}

function routeFor(deployment: ModelDeployment, settings: AssistdSettings): Route | string {
  if (!(deployment.provider in OPENAI_COMPATIBLE)) {
    return `provider '${deployment.provider}' is not supported yet`;
  }
  const timeoutSeconds = Number(deployment.params.timeout ?? settings.modelTimeoutSeconds);
  const timeoutMs = Number.isFinite(timeoutSeconds) && timeoutSeconds > 0 ? timeoutSeconds * 1000 : settings.modelTimeoutSeconds * 1000;
  const headers = stringRecord(deployment.params.extra_headers);
  const query: Record<string, string> = {};
  let baseURL = deployment.apiBase ?? OPENAI_COMPATIBLE[deployment.provider] ?? null;
  if (baseURL === null) return `litellm_params.api_base is required for provider '${deployment.provider}'`;
  let apiKey = deployment.apiKey;
  if (deployment.provider === 'azure') {
    // Azure OpenAI: the deployment is in the path, the version in the query, the key in `api-key`.
    baseURL = `${baseURL.replace(/\/+$/, '')}/openai/deployments/${encodeURIComponent(deployment.model)}`;
    query['api-version'] = deployment.apiVersion ?? AZURE_DEFAULT_API_VERSION;
    if (apiKey) headers['api-key'] = apiKey;
    apiKey = null;
  } else if (deployment.provider === 'ollama' || deployment.provider === 'ollama_chat') {
    baseURL = ollamaBase(baseURL);
  }
  if (deployment.params.organization) headers['OpenAI-Organization'] = String(deployment.params.organization);
  const wildcard = deployment.model.endsWith('*');
  const base = baseURL;
  const connection = { baseURL: base, apiKey, headers, query, timeoutMs };
  // `openai/*` passes the requested name through; `openai/gpt-*` likewise within its prefix
  const upstreamModel = (requested: string) => (wildcard ? requested : deployment.model);
  const dimensions = Number(deployment.params.dimensions);
  return {
    modelName: deployment.modelName,
    describe: `${deployment.provider}/${deployment.model} at ${redactUrl(base)}`,
    mode: deployment.mode,
    dimensions: Number.isInteger(dimensions) && dimensions > 0 ? dimensions : null,
    createEmbeddings: (requestedModel, dimensionsWanted) =>
      createOpenAICompatibleEmbeddings({ ...connection, model: upstreamModel(requestedModel), dimensions: dimensionsWanted }),
    create: (requestedModel) => createOpenAICompatibleModel({ ...connection, model: upstreamModel(requestedModel), idleTimeoutMs: timeoutMs }),
  };
}

function matches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  const expression = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return expression.test(name);
}

/**
 * Routes a model name to a deployment, as LiteLLM's router does: exact `model_name` first, then
 * wildcard names (`*`, `gpt-*`). Several deployments under one name are used in turn. Without a
 * model_list, OPENAI_API_KEY and/or OPENAI_BASE_URL route every name to that endpoint.
 */
export class ModelRegistry {
  private readonly exact = new Map<string, Route[]>();
  private readonly wildcards: Route[] = [];
  private readonly turn = new Map<string, number>();
  readonly warnings: string[] = [];

  constructor(deployments: ModelDeployment[], settings: AssistdSettings, env: Env = process.env) {
    deployments.forEach((deployment, index) => {
      const route = routeFor(deployment, settings);
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
      );
      if (typeof route !== 'string') this.wildcards.push(route);
    }
    this.embedding = this.chooseEmbedding(deployments, settings, env);
  }

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
    return this.wildcards.filter((route) => matches(route.modelName, name));
  }

  has(name: string): boolean {
    return this.routes(name).length > 0;
  }

  /** A model for `name`, or undefined when it routes nowhere. */
  resolve(name: string): LanguageModel | undefined {
    const routes = this.routes(name);
    if (routes.length === 0) return undefined;
    const index = this.turn.get(name) ?? 0;
    this.turn.set(name, index + 1);
    return routes[index % routes.length]!.create(name);
  }

  /** One line per route for the start-up banner. */
  describe(): string[] {
    return [...[...this.exact.values()].flat(), ...this.wildcards].map((route) => `${route.modelName} -> ${route.describe}`);
  }
}
