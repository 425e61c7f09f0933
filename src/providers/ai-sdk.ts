/**
 * Providers that do not speak OpenAI's chat completions (Anthropic, Gemini, Mistral, Bedrock) run
 * through the AI SDK's provider packages: each maps its own wire format onto one stream part format
 * (LanguageModelV3), and this file maps that one format onto ours. Only the provider packages are
 * used (no `ai` core): they send one request per call and never retry, so retries, timeouts and
 * routing stay where they are for every provider.
 */
import { APICallError, type LanguageModelV3, type LanguageModelV3CallOptions, type LanguageModelV3Message, type LanguageModelV3StreamPart, type EmbeddingModelV3, type SharedV3ProviderOptions } from '@ai-sdk/provider';
import { ProviderError, type ChatMessage, type EmbeddingModel, type FinishReason, type LanguageModel, type ModelRequest, type StreamPart } from './types.js';
import { createHash } from 'node:crypto';
import { truncate } from '../text.js';
import { describeError, MAX_TIMER_MS, retryAfterMs } from './upstream.js';


/** What a provider can do beyond what every one does; a request asking for more fails or is trimmed (drop_params). */
export interface ProviderAbilities {
  /** `parallel_tool_calls: false` becomes this provider option, or null when the provider cannot turn parallel calls off. */
  disableParallelToolCalls: ((request: ModelRequest) => SharedV3ProviderOptions) | null;
  /** Whether `reasoning_effort` has a meaning here. */
  reasoningEffort: boolean;
  /** The temperatures the provider takes. */
  temperatureRange: [number, number];
  /** Tool call ids as the provider accepts them (Mistral: 9 letters and digits), for calls other models made. */
  toolCallId?: (id: string) => string;
}

export interface AiSdkModelOptions {
  /** `anthropic`, `gemini`, …: named in errors. */
  provider: string;
  model: LanguageModelV3;
  abilities: ProviderAbilities;
  /** Drop what the provider lacks instead of failing the call (LiteLLM's drop_params). */
  dropParams: boolean;
  /** Used when the request sets no limit (Anthropic requires one). */
  defaultMaxTokens: number | null;
  /** Warnings about what was dropped go here. */
  warn?: (message: string) => void;
}

/**
 * A fetch with our timeouts, for the provider packages: no response headers within `timeoutMs`, or
 * no body bytes for `idleTimeoutMs`, ends the request with a retryable ProviderError.
 */
export function timedFetch(timeoutMs: number, idleTimeoutMs: number, base: typeof fetch = globalThis.fetch): typeof fetch {
  return async (input, init) => {
    const controller = new AbortController();
    const outer = init?.signal;
    const onAbort = () => controller.abort(outer?.reason);
    if (outer?.aborted) onAbort();
    else outer?.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    let timedOut: ProviderError | null = null;
    const arm = (ms: number, message: string) => {
      clearTimeout(timer);
      if (!(ms > 0)) return;
      timer = setTimeout(() => {
        timedOut = new ProviderError(message, null);
        controller.abort(timedOut);
      }, Math.min(ms, MAX_TIMER_MS));
    };
    arm(timeoutMs, `upstream sent no response headers within ${timeoutMs} ms`);
    let response: Response;
    try {
      response = await base(input, { ...init, signal: controller.signal });
    } catch (error) {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onAbort);
      throw timedOut ?? error;
    }
    clearTimeout(timer);
    if (!response.body) {
      outer?.removeEventListener('abort', onAbort);
      return response;
    }
    const reader = response.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(stream) {
        arm(idleTimeoutMs, `upstream sent nothing for ${idleTimeoutMs} ms`);
        try {
          const { done, value } = await reader.read();
          clearTimeout(timer);
          if (done) {
            outer?.removeEventListener('abort', onAbort);
            stream.close();
          } else stream.enqueue(value);
        } catch (error) {
          clearTimeout(timer);
          outer?.removeEventListener('abort', onAbort);
          stream.error(timedOut ?? error);
        }
      },
      cancel(reason) {
        clearTimeout(timer);
        outer?.removeEventListener('abort', onAbort);
        controller.abort(reason);
        return reader.cancel(reason).catch(() => {});
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

export function createAiSdkModel(options: AiSdkModelOptions): LanguageModel {
  return {
    modelId: options.model.modelId,
    stream: (request, { signal }) => streamParts(options, request, signal),
  };
}

async function* streamParts(options: AiSdkModelOptions, request: ModelRequest, signal: AbortSignal): AsyncGenerator<StreamPart> {
  signal.throwIfAborted();
  const call = callOptions(options, request, signal);
  let reader: ReadableStreamDefaultReader<LanguageModelV3StreamPart> | undefined;
  try {
    const result = await options.model.doStream(call);
    reader = result.stream.getReader();
    const calls = new ToolCalls();
    for (;;) {
      const { done, value: part } = await reader.read();
      if (done) throw new ProviderError('upstream stream ended before the completion finished', null);
      switch (part.type) {
        case 'stream-start':
          checkWarnings(options, part.warnings);
          break;
        case 'text-delta':
          if (part.delta !== '') yield { type: 'text-delta', text: part.delta };
          break;
        case 'tool-input-start':
          if (!part.providerExecuted) yield calls.start(part.id, part.toolName);
          break;
        case 'tool-input-delta': {
          const piece = calls.delta(part.id, part.delta);
          if (piece) yield piece;
          break;
        }
        case 'tool-call': {
          if (part.providerExecuted) break;
          for (const piece of calls.complete(part.toolCallId, part.toolName, part.input)) yield piece;
          break;
        }
        case 'error':
          throw toProviderError(part.error, options.provider);
        case 'finish': {
          const raw = part.finishReason.raw;
          if (part.finishReason.unified === 'error') throw new ProviderError(`${options.provider} ended the answer with an error${raw ? ` (${raw})` : ''}`, null);
          // No stop reason at all: the stream ended before the provider said it was done.
          if (raw === undefined && part.finishReason.unified === 'other') throw new ProviderError('upstream stream ended before the completion finished', null);
          let reason = finishReason(part.finishReason.unified);
          if (reason === 'stop' && calls.count > 0) reason = 'tool_calls';
          const prompt = part.usage.inputTokens.total;
          const completion = part.usage.outputTokens.total;
          const usage =
            prompt === undefined && completion === undefined
              ? null
              : { prompt_tokens: prompt ?? 0, completion_tokens: completion ?? 0, total_tokens: (prompt ?? 0) + (completion ?? 0) };
          yield { type: 'finish', reason, usage };
          return;
        }
        default:
          break; // text-start/end, reasoning, sources, metadata: nothing of ours
      }
    }
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw toProviderError(error, options.provider);
  } finally {
    if (reader) void reader.cancel().catch(() => {});
  }
}

/** Tool calls by the provider's id, numbered in the order they began. */
class ToolCalls {
  private readonly byId = new Map<string, { index: number; arguments: string }>();
  get count() {
    return this.byId.size;
  }
  start(id: string, name: string): StreamPart {
    const call = { index: this.byId.size, arguments: '' };
    this.byId.set(id, call);
    return { type: 'tool-call-delta', index: call.index, id, name, argumentsDelta: '' };
  }
  delta(id: string, text: string): StreamPart | null {
    const call = this.byId.get(id);
    if (!call || text === '') return null;
    call.arguments += text;
    return { type: 'tool-call-delta', index: call.index, argumentsDelta: text };
  }
  /** The whole call: what its deltas did not carry yet (all of it, for providers that send calls whole). */
  complete(id: string, name: string, input: string): StreamPart[] {
    const call = this.byId.get(id);
    if (!call) return [this.start(id, name), ...(input === '' ? [] : [this.delta(id, input)!])];
    if (input.startsWith(call.arguments) && input.length > call.arguments.length) return [this.delta(id, input.slice(call.arguments.length))!];
    return [];
  }
}

function finishReason(unified: string): FinishReason {
  switch (unified) {
    case 'stop':
      return 'stop';
    case 'length':
      return 'length';
    case 'tool-calls':
      return 'tool_calls';
    case 'content-filter':
      return 'content_filter';
    default:
      return 'other';
  }
}

function unsupported(options: AiSdkModelOptions, what: string): void {
  if (options.dropParams) {
    options.warn?.(`${options.provider} does not support ${what}; dropped (drop_params)`);
    return;
  }
  throw new ProviderError(
    `The model '${options.model.modelId}' (${options.provider}) does not support ${what}. Remove it, or set drop_params: true to drop it.`,
    400,
  );
}

function checkWarnings(options: AiSdkModelOptions, warnings: readonly { type: string; feature?: string; details?: string; message?: string }[]): void {
  for (const warning of warnings) {
    const text = warning.details ?? warning.message ?? warning.feature ?? 'a setting';
    if (warning.type === 'unsupported') unsupported(options, `${warning.feature ?? 'a setting'}${warning.details ? ` (${warning.details})` : ''}`);
    else options.warn?.(`${options.provider}: ${text}`);
  }
}

function callOptions(options: AiSdkModelOptions, request: ModelRequest, signal: AbortSignal): LanguageModelV3CallOptions {
  const providerOptions: SharedV3ProviderOptions = {};
  const call: LanguageModelV3CallOptions = { prompt: toPrompt(request.messages, options.abilities.toolCallId), abortSignal: signal, providerOptions };
  if (request.tools && request.tools.length > 0) {
    call.tools = request.tools.map((tool) => ({
      type: 'function',
      name: tool.function.name,
      ...(tool.function.description ? { description: tool.function.description } : {}),
      inputSchema: (tool.function.parameters ?? { type: 'object', properties: {} }) as never,
      ...(tool.function.strict ? { strict: true } : {}),
    }));
    const choice = request.toolChoice;
    if (choice !== undefined) call.toolChoice = typeof choice === 'string' ? { type: choice } : { type: 'tool', toolName: choice.function.name };
    if (request.parallelToolCalls === false) {
      if (options.abilities.disableParallelToolCalls) Object.assign(providerOptions, options.abilities.disableParallelToolCalls(request));
      else unsupported(options, 'parallel_tool_calls: false');
    }
  }
  // 1 is every provider's default for both, and the Assistants API's: sent only when set otherwise,
  // so models that take one of the two (or neither) are not refused for a default.
  if (request.temperature != null && request.temperature !== 1) {
    const [low, high] = options.abilities.temperatureRange;
    if (request.temperature < low || request.temperature > high) {
      // Refused before anything is sent; with drop_params the provider's own limit applies.
      unsupported(options, `temperature ${request.temperature} (its range is ${low} to ${high})`);
      call.temperature = Math.min(high, Math.max(low, request.temperature));
    } else call.temperature = request.temperature;
  }
  if (request.topP != null && request.topP !== 1) call.topP = request.topP;
  const maxTokens = request.maxCompletionTokens ?? options.defaultMaxTokens;
  if (maxTokens != null) call.maxOutputTokens = maxTokens;
  const format = request.responseFormat as { type?: string; json_schema?: { name?: string; description?: string; schema?: unknown } } | undefined;
  if (format && typeof format === 'object') {
    if (format.type === 'json_object') call.responseFormat = { type: 'json' };
    else if (format.type === 'json_schema') {
      call.responseFormat = {
        type: 'json',
        ...(format.json_schema?.schema ? { schema: format.json_schema.schema as never } : {}),
        ...(format.json_schema?.name ? { name: format.json_schema.name } : {}),
        ...(format.json_schema?.description ? { description: format.json_schema.description } : {}),
      };
    }
  }
  if (request.reasoningEffort != null && !options.abilities.reasoningEffort) unsupported(options, `reasoning_effort: ${request.reasoningEffort}`);
  return call;
}

/** OpenAI-shaped chat messages → the AI SDK's prompt: tool results name their tool, images become file parts. */
export function toPrompt(messages: readonly ChatMessage[], toolCallId: (id: string) => string = (id) => id): LanguageModelV3Message[] {
  const toolNames = new Map<string, string>();
  const prompt: LanguageModelV3Message[] = [];
  for (const message of messages) {
    switch (message.role) {
      case 'system':
        prompt.push({ role: 'system', content: message.content });
        break;
      case 'user': {
        const parts = typeof message.content === 'string' ? [{ type: 'text' as const, text: message.content }] : message.content;
        prompt.push({
          role: 'user',
          content: parts.map((part) => (part.type === 'text' ? { type: 'text', text: part.text } : imagePart(part.image_url.url))),
        });
        break;
      }
      case 'assistant': {
        const content: Extract<LanguageModelV3Message, { role: 'assistant' }>['content'] = [];
        if (message.content) content.push({ type: 'text', text: message.content });
        for (const call of message.tool_calls ?? []) {
          toolNames.set(call.id, call.function.name);
          content.push({ type: 'tool-call', toolCallId: toolCallId(call.id), toolName: call.function.name, input: parseArguments(call.function.arguments) });
        }
        prompt.push({ role: 'assistant', content });
        break;
      }
      case 'tool': {
        const result = {
          type: 'tool-result' as const,
          toolCallId: toolCallId(message.tool_call_id),
          toolName: toolNames.get(message.tool_call_id) ?? 'function',
          output: { type: 'text' as const, value: message.content },
        };
        // Consecutive results answer one assistant turn: one tool message, as the providers want them.
        const last = prompt.at(-1);
        if (last?.role === 'tool') last.content.push(result);
        else prompt.push({ role: 'tool', content: [result] });
        break;
      }
    }
  }
  return prompt;
}

function imagePart(url: string) {
  try {
    const data = /^data:([^;,]+)(;base64)?,(.*)$/s.exec(url);
    if (data) {
      const [, mediaType, base64, payload] = data;
      return { type: 'file' as const, mediaType: mediaType!, data: base64 ? payload! : Buffer.from(decodeURIComponent(payload!)).toString('base64') };
    }
    return { type: 'file' as const, mediaType: imageType(url), data: new URL(url) };
  } catch {
    throw new ProviderError(`The image URL is not one the model can be sent: ${truncate(url, 80)}`, 400);
  }
}

/** The image's type from its URL's extension (the providers want one); image/* when it has none. */
function imageType(url: string): string {
  const extension = /\.(png|jpe?g|gif|webp)(?:$|[?#])/i.exec(new URL(url).pathname)?.[1]?.toLowerCase();
  return extension ? `image/${extension === 'jpg' ? 'jpeg' : extension}` : 'image/*';
}

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Mistral takes only 9-letter-or-digit tool call ids; calls another model made (`call_…`, `toolu_…`)
 * get one derived from their own, the same for the call and its result.
 */
export function mistralToolCallId(id: string): string {
  if (/^[a-zA-Z0-9]{9}$/.test(id)) return id;
  const digest = createHash('sha256').update(id).digest();
  return Array.from(digest.subarray(0, 9), (byte) => BASE62[byte % 62]).join('');
}

/** Providers want the call's input as an object; a model that wrote broken JSON is shown it as text. */
function parseArguments(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value;
  } catch {
    // fall through
  }
  return text === '' ? {} : { arguments: text };
}

/** Retry-After from the headers an APICallError kept (a plain record, names in any case). */
function headerRetryAfter(headers: Record<string, string> | undefined): number | null {
  if (!headers) return null;
  const lower = new Map(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
  return retryAfterMs((name) => lower.get(name));
}

/** Google's errors say when to retry in the body: `details: [{"@type": "…RetryInfo", "retryDelay": "2s"}]`. */
function retryDelayMs(body: string | undefined): number | null {
  if (!body || !body.includes('retryDelay')) return null;
  try {
    const details = (JSON.parse(body) as { error?: { details?: { retryDelay?: unknown }[] } }).error?.details ?? [];
    for (const detail of details) {
      const match = typeof detail.retryDelay === 'string' ? /^(\d+(?:\.\d+)?)s$/.exec(detail.retryDelay) : null;
      if (match) return Math.round(Number(match[1]) * 1000);
    }
  } catch {
    // not JSON
  }
  return null;
}

// (Not AI_TypeValidationError: that is an upstream chunk that did not parse, which a retry may fix.)
const LOCAL_REFUSALS = new Set(['AI_UnsupportedFunctionalityError', 'AI_InvalidPromptError', 'AI_InvalidArgumentError', 'AI_LoadAPIKeyError']);

/** Mid-stream error events that mean "try again" (Anthropic's overloaded_error, Bedrock's throttlingException, …). */
const RETRYABLE_ERROR_TYPES = /overloaded|rate_limit|throttl|unavailable|internal|api_error|timeout|exhausted/i;

function toProviderError(error: unknown, provider: string): unknown {
  if (error instanceof ProviderError) return error;
  if (APICallError.isInstance(error)) {
    // A 2xx whose body could not be read (a stream cut off as it began) is a broken answer, not a refusal.
    const status = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : null;
    const cause = error.cause instanceof Error ? `: ${describeError(error.cause)}` : '';
    const message = status === null ? `${error.message}${cause}` : (upstreamMessage(error.responseBody) ?? error.message);
    return new ProviderError(truncate(message, 1_000), status, { retryAfterMs: headerRetryAfter(error.responseHeaders) ?? retryDelayMs(error.responseBody), cause: error });
  }
  if (error instanceof Error) {
    if (error.name === 'AbortError' || error.name === 'TimeoutError') return error;
    // Refused by the provider package before anything was sent: the request (or the setup) is at
    // fault, and asking again cannot help.
    if (LOCAL_REFUSALS.has(error.name)) return new ProviderError(`${provider}: ${error.message}`, error.name === 'AI_LoadAPIKeyError' ? 401 : 400, { cause: error });
    return new ProviderError(`upstream request failed: ${describeError(error)}`, null, { cause: error });
  }
  // An error part carrying the provider's own error object (a mid-stream error event).
  if (typeof error === 'object' && error !== null) {
    const record = error as { type?: unknown; message?: unknown; error?: { type?: unknown; message?: unknown } };
    const inner = record.error ?? record;
    const type = typeof inner.type === 'string' ? inner.type : '';
    const message = typeof inner.message === 'string' ? inner.message : JSON.stringify(error);
    return new ProviderError(truncate(`${provider} reported ${type || 'an error'} mid-stream: ${message}`, 1_000), null, {
      retryable: type === '' || RETRYABLE_ERROR_TYPES.test(type),
    });
  }
  return new ProviderError(`${provider} reported an error: ${String(error)}`, null);
}

/** The message inside a provider's error body (Anthropic, Gemini, Mistral, Bedrock shapes), if there is one. */
function upstreamMessage(body: string | undefined): string | null {
  if (!body) return null;
  try {
    const json = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown; Message?: unknown };
    if (typeof json.error === 'string') return json.error;
    if (typeof json.error?.message === 'string') return json.error.message;
    if (typeof json.message === 'string') return json.message;
    if (typeof json.Message === 'string') return json.Message;
  } catch {
    return truncate(body.trim(), 500) || null;
  }
  return null;
}


/** An AI SDK embedding model as ours. */
export function createAiSdkEmbeddings(provider: string, model: EmbeddingModelV3, providerOptions: SharedV3ProviderOptions = {}): EmbeddingModel {
  return {
    modelId: model.modelId,
    dimensions: null,
    async embed(texts, { signal } = {}) {
      if (texts.length === 0) return [];
      try {
        const result = await model.doEmbed({ values: [...texts], abortSignal: signal, providerOptions });
        if (result.embeddings.length !== texts.length) throw new ProviderError(`upstream returned ${result.embeddings.length} embeddings for ${texts.length} inputs`, null);
        return result.embeddings.map((vector) => Array.from(vector));
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        throw toProviderError(error, provider);
      }
    },
  };
}
