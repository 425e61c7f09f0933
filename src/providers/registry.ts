import type { AssistdSettings, ModelDeployment } from '../config.js';
import { createOpenAICompatibleModel } from './openai-compatible.js';
import type { LanguageModel } from './types.js';
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
  create(requestedModel: string): LanguageModel;
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
  return {
    modelName: deployment.modelName,
    describe: `${deployment.provider}/${deployment.model} at ${redactUrl(base)}`,
    create: (requestedModel) =>
      createOpenAICompatibleModel({
        baseURL: base,
        apiKey,
        // `openai/*` passes the requested name through; `openai/gpt-*` likewise within its prefix
        model: wildcard ? requestedModel : deployment.model,
        headers,
        query,
        timeoutMs,
        idleTimeoutMs: timeoutMs,
      }),
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
        },
        settings,
      );
      if (typeof route !== 'string') this.wildcards.push(route);
    }
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
