/**
 * LiteLLM's router, for one process: several deployments under one model_name share the load
 * (simple-shuffle by weight, or least-busy), each within its rpm/tpm limits; a deployment that fails
 * is cooled down while others are free; a call that fails before it said anything moves to the next
 * deployment, then to the model_names `fallbacks` lists. Once a stream has produced output it is
 * never moved: the run's own retry takes over from there.
 */
import { ProviderError, type LanguageModel, type ModelRequest, type StreamPart } from './types.js';

const WINDOW_MS = 60_000;

export interface Deployment {
  /** For logs and errors: `anthropic/claude-3-5-sonnet at https://…`. */
  describe: string;
  weight: number;
  rpm: number | null;
  tpm: number | null;
  create(requestedModel: string): LanguageModel;
}

/** Live load figures of one deployment, in this process. */
class Load {
  inFlight = 0;
  cooldownUntil = 0;
  private readonly requests: number[] = [];
  private readonly tokens: { at: number; count: number }[] = [];

  private prune(now: number) {
    while (this.requests.length > 0 && this.requests[0]! <= now - WINDOW_MS) this.requests.shift();
    while (this.tokens.length > 0 && this.tokens[0]!.at <= now - WINDOW_MS) this.tokens.shift();
  }

  /** 0 when under its limits, else the ms until the window frees room. */
  waitMs(deployment: Deployment, now: number): number {
    this.prune(now);
    let wait = 0;
    if (deployment.rpm !== null && this.requests.length >= deployment.rpm) wait = Math.max(wait, this.requests[0]! + WINDOW_MS - now);
    if (deployment.tpm !== null) {
      const used = this.tokens.reduce((sum, entry) => sum + entry.count, 0);
      if (used >= deployment.tpm) wait = Math.max(wait, this.tokens[0]!.at + WINDOW_MS - now);
    }
    return wait;
  }

  started(now: number) {
    this.requests.push(now);
  }

  used(count: number, now: number) {
    if (count > 0) this.tokens.push({ at: now, count });
  }
}

export interface RouterOptions {
  strategy: 'simple-shuffle' | 'least-busy';
  cooldownMs: number;
  fallbacks: Record<string, string[]>;
  /** The deployments a model_name routes to (empty: none). */
  deployments(name: string): Deployment[];
  random?: () => number;
  log?: (message: string) => void;
}

export class Router {
  private readonly loads = new WeakMap<Deployment, Load>();
  private readonly random: () => number;

  constructor(private readonly options: RouterOptions) {
    this.random = options.random ?? Math.random;
  }

  private load(deployment: Deployment): Load {
    let load = this.loads.get(deployment);
    if (!load) {
      load = new Load();
      this.loads.set(deployment, load);
    }
    return load;
  }

  /** A model for `name` that routes each call; undefined when `name` has no deployment. */
  model(name: string): LanguageModel | undefined {
    if (this.options.deployments(name).length === 0) return undefined;
    return { modelId: name, stream: (request, options) => this.stream(name, request, options.signal) };
  }

  /** The model_names tried for `name`: itself, then its fallbacks (then the `*` fallbacks), each once. */
  private chain(name: string): string[] {
    const own = (key: string) => (Object.hasOwn(this.options.fallbacks, key) ? this.options.fallbacks[key]! : []);
    const names = [name, ...own(name), ...own('*')];
    return [...new Set(names)];
  }

  /** Picks a deployment among those not yet tried: free of cooldown and under its limits if any is. */
  private pick(deployments: Deployment[], tried: Set<Deployment>, now: number): { deployment: Deployment } | { waitMs: number } | null {
    const open = deployments.filter((deployment) => !tried.has(deployment));
    if (open.length === 0) return null;
    const withinLimits = open.filter((deployment) => this.load(deployment).waitMs(deployment, now) === 0);
    if (withinLimits.length === 0) return { waitMs: Math.min(...open.map((deployment) => this.load(deployment).waitMs(deployment, now))) };
    const warm = withinLimits.filter((deployment) => this.load(deployment).cooldownUntil <= now);
    const pool = warm.length > 0 ? warm : withinLimits;
    if (this.options.strategy === 'least-busy') {
      const least = Math.min(...pool.map((deployment) => this.load(deployment).inFlight));
      return { deployment: this.shuffle(pool.filter((deployment) => this.load(deployment).inFlight === least)) };
    }
    return { deployment: this.shuffle(pool) };
  }

  /** Weighted random choice (LiteLLM's simple-shuffle): `weight`, else rpm, else tpm, else equal. */
  private shuffle(pool: Deployment[]): Deployment {
    if (pool.length === 1) return pool[0]!;
    const weights = pool.map((deployment) => Math.max(0, deployment.weight));
    const total = weights.reduce((sum, weight) => sum + weight, 0);
    if (!(total > 0)) return pool[Math.floor(this.random() * pool.length)]!;
    let point = this.random() * total;
    for (const [index, weight] of weights.entries()) {
      point -= weight;
      if (point < 0) return pool[index]!;
    }
    return pool.at(-1)!;
  }

  private async *stream(name: string, request: ModelRequest, signal: AbortSignal): AsyncGenerator<StreamPart> {
    let lastError: unknown = null;
    for (const groupName of this.chain(name)) {
      const deployments = this.options.deployments(groupName);
      const tried = new Set<Deployment>();
      for (;;) {
        const now = Date.now();
        const choice = this.pick(deployments, tried, now);
        if (choice === null) break;
        if ('waitMs' in choice) {
          lastError = new ProviderError(`Every deployment of '${groupName}' is at its rpm/tpm limit; the next frees up in ${Math.ceil(choice.waitMs / 1000)} s.`, 429, {
            retryAfterMs: choice.waitMs,
          });
          break;
        }
        const { deployment } = choice;
        tried.add(deployment);
        const load = this.load(deployment);
        load.started(now);
        load.inFlight += 1;
        let produced = false;
        try {
          for await (const part of deployment.create(groupName).stream(request, { signal })) {
            if (part.type === 'finish') load.used(part.usage?.total_tokens ?? 0, Date.now());
            produced = true;
            yield part;
          }
          return;
        } catch (error) {
          if (produced || signal.aborted || !(error instanceof ProviderError)) throw error;
          if (error.isRetryable) load.cooldownUntil = Date.now() + this.options.cooldownMs;
          lastError = error;
          // The upstream's words stay out of the log: they may quote the prompt (the run's last_error has them).
          this.options.log?.(`${deployment.describe} failed (${error.statusCode === null ? 'no HTTP status' : `HTTP ${error.statusCode}`}); trying the next deployment or fallback`);
        } finally {
          load.inFlight -= 1;
        }
      }
    }
    throw lastError ?? new ProviderError(`No deployment of '${name}' could take the call.`, 503);
  }
}
