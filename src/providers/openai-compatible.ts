import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { z } from 'zod';
import {
  ProviderError,
  type EmbeddingModel,
  type FinishReason,
  type LanguageModel,
  type ModelRequest,
  type StreamPart,
  type Usage,
} from './types.js';
import { truncate } from '../text.js';
import { describeError, fetchTransport, MAX_TIMER_MS, nodeTransport, readText, retryAfterMs, type Transport, type UpstreamResponse } from './upstream.js';

export interface OpenAICompatibleOptions {
  /** API root such as `https://api.openai.com/v1`; `/chat/completions` is appended. */
  baseURL: string;
  apiKey?: string | null;
  model: string;
  /** Extra headers, overriding ours (Azure passes its `api-key` here). */
  headers?: Record<string, string>;
  /** Extra query parameters (Azure's `api-version`). */
  query?: Record<string, string>;
  /** No response headers within this many ms → retryable ProviderError. Default 10 minutes; 0 disables. */
  timeoutMs?: number;
  /** No body bytes within this many ms while reading → retryable ProviderError. Default 10 minutes; 0 disables. */
  idleTimeoutMs?: number;
  /** Calls the upstream through this fetch instead of node:http (tests answer from it). */
  fetch?: typeof fetch;
}

// Matches the OpenAI SDKs' and LiteLLM's request timeout: reasoning models can stay silent for minutes.
const DEFAULT_TIMEOUT_MS = 600_000;
/** How long to wait for the body to end after `[DONE]`, so the connection can be reused. */
const DRAIN_AFTER_DONE_MS = 200;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_ERROR_MESSAGE_CHARS = 1_000;

// ------------------------------------------------------------------ upstream schemas (only what we read)

const errorBodySchema = z.object({
  error: z.union([
    z.string(),
    z.object({ message: z.string().nullish(), code: z.union([z.string(), z.number()]).nullish() }),
  ]),
});

const usageSchema = z.object({
  prompt_tokens: z.number().nullish(),
  completion_tokens: z.number().nullish(),
  total_tokens: z.number().nullish(),
});

// Some servers (Mistral-style) send arguments as an object rather than JSON text.
const argumentsSchema = z.union([z.string(), z.record(z.unknown())]).nullish();

const toolCallDeltaSchema = z.object({
  index: z.number().int().nonnegative().nullish(),
  id: z.string().nullish(),
  function: z.object({ name: z.string().nullish(), arguments: argumentsSchema }).nullish(),
});

const functionCallSchema = z.object({ name: z.string().nullish(), arguments: argumentsSchema });

const chunkSchema = z.object({
  choices: z
    .array(
      z.object({
        index: z.number().nullish(),
        delta: z
          .object({
            content: z.string().nullish(),
            tool_calls: z.array(toolCallDeltaSchema).nullish(),
            function_call: functionCallSchema.nullish(),
          })
          .nullish(),
        finish_reason: z.string().nullish(),
      }),
    )
    .nullish(),
  usage: usageSchema.nullish(),
});

const completionSchema = z.object({
  choices: z.array(
    z.object({
      index: z.number().nullish(),
      message: z.object({
        content: z.string().nullish(),
        tool_calls: z
          .array(z.object({ id: z.string().nullish(), function: z.object({ name: z.string(), arguments: argumentsSchema }) }))
          .nullish(),
        function_call: functionCallSchema.nullish(),
      }),
      finish_reason: z.string().nullish(),
    }),
  ),
  usage: usageSchema.nullish(),
});

type Chunk = z.infer<typeof chunkSchema>;
type ReadResult = Awaited<ReturnType<UpstreamResponse['read']>>;

const embeddingsSchema = z.object({
  data: z.array(z.object({ index: z.number().int().nonnegative().nullish(), embedding: z.array(z.number()) })),
});

// ------------------------------------------------------------------ embeddings

export interface OpenAICompatibleEmbeddingOptions extends Pick<OpenAICompatibleOptions, 'baseURL' | 'apiKey' | 'model' | 'headers' | 'query' | 'timeoutMs' | 'fetch'> {
  /** Sent as `dimensions` (OpenAI's text-embedding-3 models shorten their vectors to it). */
  dimensions?: number | null;
}

export function createOpenAICompatibleEmbeddings(options: OpenAICompatibleEmbeddingOptions): EmbeddingModel {
  const url = endpointURL(options.baseURL, '/embeddings', options.query);
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  const transport = options.fetch ? fetchTransport(options.fetch) : nodeTransport;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const dimensions = options.dimensions ?? null;
  return {
    modelId: options.model,
    dimensions,
    async embed(texts, { signal } = {}) {
      if (texts.length === 0) return [];
      const body: Record<string, unknown> = { model: options.model, input: texts, encoding_format: 'float' };
      if (dimensions !== null) body.dimensions = dimensions;
      const timeout = timeoutMs > 0 ? AbortSignal.timeout(Math.min(timeoutMs, MAX_TIMER_MS)) : undefined;
      const combined = signal && timeout ? AbortSignal.any([signal, timeout]) : (signal ?? timeout);
      let response: UpstreamResponse;
      let text: string;
      try {
        response = await transport(url, { headers, body: JSON.stringify(body), signal: combined });
        text = await readText(response);
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        if (timeout?.aborted) throw new ProviderError(`upstream embeddings sent no answer within ${timeoutMs} ms`, null);
        throw new ProviderError(`upstream embeddings request failed: ${describeError(error)}`, null, { cause: error });
      }
      if (!response.ok) throw httpError(response, text);
      let parsed: z.infer<typeof embeddingsSchema>;
      try {
        parsed = embeddingsSchema.parse(JSON.parse(text));
      } catch {
        throw new ProviderError(`upstream sent an unexpected embeddings response: ${truncate(text, 200)}`, null);
      }
      if (parsed.data.length !== texts.length) {
        throw new ProviderError(`upstream returned ${parsed.data.length} embeddings for ${texts.length} inputs`, null);
      }
      const ordered = new Array<number[]>(texts.length);
      parsed.data.forEach((item, position) => {
        ordered[item.index ?? position] = item.embedding;
      });
      return ordered;
    },
  };
}

// ------------------------------------------------------------------ the model

export function createOpenAICompatibleModel(options: OpenAICompatibleOptions): LanguageModel {
  const url = endpointURL(options.baseURL, '/chat/completions', options.query);
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
  const transport = options.fetch ? fetchTransport(options.fetch) : nodeTransport;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_TIMEOUT_MS;

  return {
    modelId: options.model,
    stream(request, { signal }) {
      return streamCompletion({
        url,
        headers,
        body: JSON.stringify(requestBody(options.model, request)),
        transport,
        timeoutMs,
        idleTimeoutMs,
        signal,
      });
    },
  };
}

function endpointURL(baseURL: string, endpoint: string, query: Record<string, string> | undefined): string {
  const url = new URL(baseURL); // throws at configuration time, not on the first run
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${endpoint}`;
  for (const [name, value] of Object.entries(query ?? {})) url.searchParams.set(name, value);
  return url.toString();
}

function requestBody(model: string, request: ModelRequest): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model,
    messages: request.messages,
    stream: true,
    stream_options: { include_usage: true },
  };
  // OpenAI rejects tool_choice and parallel_tool_calls without tools.
  if (request.tools && request.tools.length > 0) {
    body.tools = request.tools;
    if (request.toolChoice !== undefined) body.tool_choice = request.toolChoice;
    if (request.parallelToolCalls !== undefined) body.parallel_tool_calls = request.parallelToolCalls;
  }
  if (request.temperature != null) body.temperature = request.temperature;
  if (request.topP != null) body.top_p = request.topP;
  // Not `max_tokens`: OpenAI's reasoning models reject it, and vLLM and recent Ollama read this one.
  if (request.maxCompletionTokens != null) body.max_completion_tokens = request.maxCompletionTokens;
  // `auto` is the Assistants API's "unset"; chat completions only knows objects.
  if (request.responseFormat != null && request.responseFormat !== 'auto') body.response_format = request.responseFormat;
  if (request.reasoningEffort != null) body.reasoning_effort = request.reasoningEffort;
  return body;
}

interface StreamSettings {
  url: string;
  headers: Record<string, string>;
  body: string;
  transport: Transport;
  timeoutMs: number;
  idleTimeoutMs: number;
  signal: AbortSignal;
}

async function* streamCompletion(settings: StreamSettings): AsyncGenerator<StreamPart> {
  const { signal } = settings;
  signal.throwIfAborted();

  // Our own controller, so a timeout and the caller's cancel both abort the request while staying
  // distinguishable: the caller's reason is rethrown as is, a timeout becomes a ProviderError.
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });

  let timer: NodeJS.Timeout | undefined;
  let timeoutError: ProviderError | null = null;
  const arm = (ms: number, message: string) => {
    if (!(ms > 0) || !Number.isFinite(ms)) return;
    timer = setTimeout(() => {
      timeoutError = new ProviderError(message, null);
      controller.abort(timeoutError);
    }, Math.min(ms, MAX_TIMER_MS));
  };
  const disarm = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  const fail = (error: unknown): unknown => {
    if (signal.aborted) return signal.reason;
    if (error instanceof ProviderError) return error;
    if (timeoutError) return timeoutError;
    return new ProviderError(`upstream request failed: ${describeError(error)}`, null, { cause: error });
  };

  let response: UpstreamResponse | undefined;
  let bodyDone = false;
  let completed = false;
  const read = async (): Promise<ReadResult> => {
    arm(settings.idleTimeoutMs, `upstream sent nothing for ${settings.idleTimeoutMs} ms`);
    try {
      const result = await response!.read();
      if (result.done) bodyDone = true;
      return result;
    } finally {
      disarm();
    }
  };

  const state = new StreamState();
  try {
    arm(settings.timeoutMs, `upstream sent no response headers within ${settings.timeoutMs} ms`);
    try {
      response = await settings.transport(settings.url, { headers: settings.headers, body: settings.body, signal: controller.signal });
    } finally {
      disarm();
    }

    if (!response.ok) throw httpError(response, await readText(response, MAX_ERROR_BODY_BYTES, read));

    const contentType = response.header('content-type') ?? '';
    if (contentType.includes('application/json')) {
      // A server that ignored `stream: true` and answered with one completion.
      const text = await readText(response, Number.POSITIVE_INFINITY, read);
      for (const part of partsFromCompletion(text)) yield part;
      completed = true;
      return;
    }

    const events: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    const decoder = new TextDecoder();
    const parts: StreamPart[] = [];
    try {
      while (!state.sawDone) {
        const { done, value } = await read();
        // A final blank line dispatches an event whose terminator the server forgot.
        parser.feed(done ? `${decoder.decode()}\n\n` : decoder.decode(value, { stream: true }));
        for (const event of events) {
          state.handleEvent(event, parts);
          for (const part of parts) yield part;
          parts.length = 0;
          if (state.sawDone) break;
        }
        events.length = 0;
        if (done) break;
      }
    } catch (error) {
      // Once the finish reason arrived the answer is whole; a failure while waiting for the usage
      // chunk or `[DONE]` loses at most the usage. A cancel is still a cancel.
      if (signal.aborted || state.finishReason === null) throw error;
    }
    yield state.finish();
    completed = true;
  } catch (error) {
    throw fail(error);
  } finally {
    disarm();
    signal.removeEventListener('abort', onAbort);
    if (response && !bodyDone) {
      if (completed && !signal.aborted) await drain(response, DRAIN_AFTER_DONE_MS);
      if (!bodyDone) controller.abort(new Error('stream closed before the upstream response ended'));
    }
  }

  async function drain(open: UpstreamResponse, ms: number): Promise<void> {
    let drainTimer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      drainTimer = setTimeout(resolve, ms, null);
    });
    try {
      for (;;) {
        const result = await Promise.race([open.read(), timeout]);
        if (result === null) return;
        if (result.done) {
          bodyDone = true;
          return;
        }
      }
    } catch {
      // The answer was already delivered; the connection is simply not reused.
    } finally {
      clearTimeout(drainTimer);
    }
  }
}

/** What one streamed completion has said so far. */
class StreamState {
  finishReason: string | null = null;
  sawDone = false;
  private usage: Usage | null = null;
  private toolCallCount = 0;
  /** Per tool call index: whether its id and name were already reported. */
  private readonly toolCalls = new Map<number, { id: boolean; name: boolean }>();
  private readonly indexById = new Map<string, number>();
  private lastIndex = -1;

  handleEvent(event: EventSourceMessage, parts: StreamPart[]): void {
    const data = event.data.trim();
    if (data === '[DONE]') {
      this.sawDone = true;
      return;
    }
    if (data === '') return;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      throw new ProviderError(`upstream sent a malformed stream chunk: ${truncate(data, 200)}`, null);
    }
    // Checked by hand first: a schema parse per chunk for an error almost never sent is waste.
    if (event.event === 'error' || (typeof json === 'object' && json !== null && (json as { error?: unknown }).error != null)) {
      const upstreamError = errorBodySchema.safeParse(json);
      const message = upstreamError.success ? errorMessage(upstreamError.data) : null;
      throw new ProviderError(message ?? `upstream reported an error in the stream: ${truncate(data, 200)}`, null);
    }
    const chunk = chunkSchema.safeParse(json);
    if (!chunk.success) {
      throw new ProviderError(`upstream sent an unexpected stream chunk: ${truncate(data, 200)}`, null);
    }
    this.handleChunk(chunk.data, parts);
  }

  private handleChunk(chunk: Chunk, parts: StreamPart[]): void {
    if (chunk.usage) this.usage = toUsage(chunk.usage);
    for (const choice of chunk.choices ?? []) {
      if (choice.index != null && choice.index !== 0) continue;
      const delta = choice.delta;
      if (delta?.content) parts.push({ type: 'text-delta', text: delta.content });
      for (const [position, call] of (delta?.tool_calls ?? []).entries()) {
        this.addToolCallDelta(call.index ?? this.indexWithoutIndex(call.id, position), call.id, call.function?.name, call.function?.arguments, parts);
      }
      if (delta?.function_call) {
        const call = delta.function_call;
        const first = !this.toolCalls.has(0);
        this.addToolCallDelta(0, first ? `call_${randomSuffix()}` : null, call.name, call.arguments, parts);
      }
      if (choice.finish_reason) this.finishReason = choice.finish_reason;
    }
  }

  /** Some servers (Gemini's compatibility layer) omit `index`: a new id starts a new call. */
  private indexWithoutIndex(id: string | null | undefined, position: number): number {
    if (id) {
      const known = this.indexById.get(id);
      if (known !== undefined) return known;
      const index = Math.max(this.toolCallCount, position);
      this.indexById.set(id, index);
      return index;
    }
    return this.lastIndex >= 0 ? this.lastIndex : position;
  }

  private addToolCallDelta(
    index: number,
    id: string | null | undefined,
    name: string | null | undefined,
    rawArguments: string | Record<string, unknown> | null | undefined,
    parts: StreamPart[],
  ): void {
    let seen = this.toolCalls.get(index);
    if (!seen) {
      seen = { id: false, name: false };
      this.toolCalls.set(index, seen);
      this.toolCallCount = Math.max(this.toolCallCount, index + 1);
    }
    this.lastIndex = index;
    const part: StreamPart & { type: 'tool-call-delta' } = {
      type: 'tool-call-delta',
      index,
      argumentsDelta: typeof rawArguments === 'string' ? rawArguments : rawArguments ? JSON.stringify(rawArguments) : '',
    };
    // Only the first id and name are reported: some servers repeat them on every piece.
    if (id && !seen.id) {
      part.id = id;
      seen.id = true;
    }
    if (name && !seen.name) {
      part.name = name;
      seen.name = true;
    }
    if (part.id === undefined && part.name === undefined && part.argumentsDelta === '') return;
    parts.push(part);
  }

  finish(): StreamPart {
    if (this.finishReason === null && !this.sawDone) {
      throw new ProviderError('upstream stream ended before the completion finished', null);
    }
    let reason = this.finishReason === null ? 'stop' : mapFinishReason(this.finishReason);
    // Several servers say `stop` after streaming tool calls.
    if (reason === 'stop' && this.toolCalls.size > 0) reason = 'tool_calls';
    return { type: 'finish', reason, usage: this.usage };
  }
}

function partsFromCompletion(text: string): StreamPart[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ProviderError(`upstream sent malformed JSON: ${truncate(text, 200)}`, null);
  }
  const upstreamError = errorBodySchema.safeParse(json);
  if (upstreamError.success) {
    throw new ProviderError(errorMessage(upstreamError.data) ?? 'upstream reported an error', null);
  }
  const completion = completionSchema.safeParse(json);
  const choice = completion.success ? completion.data.choices.find((item) => item.index == null || item.index === 0) : undefined;
  if (!completion.success || !choice) {
    throw new ProviderError(`upstream sent an unexpected completion: ${truncate(text, 200)}`, null);
  }
  const parts: StreamPart[] = [];
  const { message } = choice;
  if (message.content) parts.push({ type: 'text-delta', text: message.content });
  const calls = message.tool_calls ?? (message.function_call ? [{ id: null, function: message.function_call }] : []);
  for (const [index, call] of calls.entries()) {
    const args = call.function.arguments;
    parts.push({
      type: 'tool-call-delta',
      index,
      id: call.id ?? `call_${randomSuffix()}`,
      name: call.function.name ?? '',
      argumentsDelta: typeof args === 'string' ? args : args ? JSON.stringify(args) : '',
    });
  }
  let reason = choice.finish_reason ? mapFinishReason(choice.finish_reason) : 'stop';
  if (reason === 'stop' && calls.length > 0) reason = 'tool_calls';
  parts.push({ type: 'finish', reason, usage: completion.data.usage ? toUsage(completion.data.usage) : null });
  return parts;
}

function mapFinishReason(reason: string): FinishReason {
  switch (reason) {
    case 'stop':
    case 'eos':
    case 'eos_token':
    case 'end_turn':
    case 'stop_sequence':
      return 'stop';
    case 'length':
    case 'max_tokens':
    case 'model_length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
    case 'tool_use':
      return 'tool_calls';
    case 'content_filter':
      return 'content_filter';
    default:
      return 'other';
  }
}

function toUsage(usage: z.infer<typeof usageSchema>): Usage {
  const prompt = usage.prompt_tokens ?? 0;
  const completion = usage.completion_tokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: usage.total_tokens ?? prompt + completion };
}

// ------------------------------------------------------------------ errors

function httpError(response: UpstreamResponse, bodyText: string): ProviderError {
  let message: string | null = null;
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(bodyText));
    if (parsed.success) message = errorMessage(parsed.data);
  } catch {
    // not JSON: quote the body below
  }
  if (message === null) {
    const body = bodyText.trim();
    const status = `upstream returned HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
    message = body ? `${status}: ${body}` : status;
  }
  return new ProviderError(truncate(message, MAX_ERROR_MESSAGE_CHARS), response.status, {
    retryAfterMs: retryAfterMs((name) => response.header(name)),
  });
}

function errorMessage(body: z.infer<typeof errorBodySchema>): string | null {
  if (typeof body.error === 'string') return body.error || null;
  return body.error.message || null;
}

function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 14);
}
