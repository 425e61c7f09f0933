/**
 * A scripted fake model: a real HTTP server speaking OpenAI's chat completions (streamed exactly as
 * OpenAI streams them, or whole) and embeddings, and on extra paths the wire protocols of Anthropic
 * Messages (`/anthropic/v1`), Google Gemini (`/gemini/v1beta`), Mistral chat completions
 * (`/mistral/v1`) and AWS Bedrock Converse (`/bedrock`). Each chat request, whatever its protocol,
 * takes the next scripted turn. Built for speed as well as tests: a benchmark drives 1,000
 * concurrent slow streams through it.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { handleAnthropic } from './fake-anthropic.js';
import { handleBedrock } from './fake-bedrock.js';
import { handleGemini } from './fake-gemini.js';
import { handleMistral } from './fake-mistral.js';
import {
  finishReasonOf,
  hexId,
  playTurn,
  splitArguments,
  sse,
  sendJson,
  textPieces,
  toolCallsOf,
  tokenCounts,
  wholeText,
  type ProtocolRequest,
  type StreamError,
} from './fake-wire.js';

export interface FakeTurn {
  /** Streamed split into word-ish chunks (spaces kept), unless `chunks` is given. */
  text?: string;
  chunks?: string[];
  /**
   * Streamed like OpenAI: first piece id+name, then the arguments in a few pieces (Anthropic and
   * Bedrock: the same pieces as their partial JSON; Mistral: each call whole; Gemini: each call a
   * whole `functionCall` part, its arguments parsed). `id` default: the provider's id format.
   */
  toolCalls?: { name: string; arguments: string; id?: string }[];
  /**
   * Default: `tool_calls` when there are tool calls, else `stop`. Mapped to each provider's stop
   * reason (Anthropic / Bedrock: end_turn, max_tokens, tool_use, refusal / content_filtered;
   * Gemini: STOP, MAX_TOKENS, STOP, SAFETY).
   */
  finishReason?: 'stop' | 'length' | 'tool_calls' | 'content_filter';
  /**
   * Default: computed roughly from lengths. `null`: no usage at all (a server ignoring
   * `include_usage`; Gemini: no usageMetadata, Mistral: no usage, Bedrock: no metadata event;
   * Anthropic, whose messages always carry usage, reports the estimate).
   */
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
  /** Delay between stream chunks (slow streams). */
  chunkDelayMs?: number;
  /** Delay before the response headers. */
  firstByteDelayMs?: number;
  /** An error response in the protocol's error shape (status mapped to the provider's error type). */
  status?: number;
  errorMessage?: string;
  retryAfter?: string;
  /** Destroy the socket after this many SSE events (event-stream frames for Bedrock): a broken stream. */
  breakAfterChunks?: number;
  /**
   * The stream fails midway: after `afterEvents` events (default 1) comes the protocol's error event
   * and the stream ends (Anthropic `event: error`, Bedrock an exception frame, Gemini / OpenAI /
   * Mistral a `data: {"error"...}` event). `type` is the provider's error type verbatim (e.g.
   * `overloaded_error`, `throttlingException`, `UNAVAILABLE`); without it `status` (default: the
   * provider's "overloaded", 529 Anthropic, 503 others) picks it. A whole (non-streamed) answer gets
   * the same failure as an HTTP error status.
   */
  streamError?: { afterEvents?: number; type?: string; message?: string; status?: number };
  /** Accept the request and never answer. */
  hang?: boolean;
}

export type FakeProtocol = 'openai' | 'anthropic' | 'gemini' | 'mistral' | 'bedrock';

export interface RecordedRequest {
  /** Which wire the request came in on (by path prefix). */
  protocol: FakeProtocol;
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: any;
  receivedAt: number;
  /** SSE data events written so far for this request (live), to check delivery is part by part. */
  chunksSent: number;
}

export interface FakeModel {
  /** e.g. http://127.0.0.1:PORT/v1 */
  url: string;
  /** Anthropic Messages: base URL for clients, `…/anthropic/v1` (POST `messages`). */
  anthropicURL: string;
  /** Gemini: `…/gemini/v1beta` (POST `models/{model}:streamGenerateContent?alt=sse` / `:generateContent`; `/gemini/v1` too). */
  geminiURL: string;
  /** Mistral: `…/mistral/v1` (POST `chat/completions`). */
  mistralURL: string;
  /** Bedrock runtime endpoint: `…/bedrock` (POST `model/{modelId}/converse-stream` / `converse`). */
  bedrockURL: string;
  requests: RecordedRequest[];
  /** FIFO: each chat request takes the next turn. */
  enqueue(...turns: FakeTurn[]): void;
  /** Consulted first; `undefined` falls through to the queue. */
  onRequest(handler: ((request: RecordedRequest) => FakeTurn | undefined) | null): void;
  /** Used when the queue is empty and no handler answers. */
  defaultTurn: FakeTurn;
  /** Connections with a request in progress (idle keep-alive sockets are not counted). */
  activeConnections(): number;
  /** Embeddings: a delay before each answer, and error statuses the next requests get (FIFO). */
  embeddings: { delayMs: number; failures: number[] };
  /** Also ends hanging requests. */
  close(): Promise<void>;
}

const DEFAULT_EMBEDDING_DIMENSIONS = 256;

export async function startFakeModel(): Promise<FakeModel> {
  const queue: FakeTurn[] = [];
  let handler: ((request: RecordedRequest) => FakeTurn | undefined) | null = null;
  const sockets = new Set<Socket>();
  let inFlight = 0;
  let completionCounter = 0;

  const server = createServer({ noDelay: true, keepAliveTimeout: 5_000 }, (request, response) => {
    inFlight += 1;
    response.once('close', () => {
      inFlight -= 1;
    });
    readBody(request)
      .then((raw) => handle(request, response, raw))
      .catch((error: unknown) => {
        if (!response.headersSent && !response.destroyed) {
          sendError(response, 500, `fake model failure: ${String(error)}`);
        }
      });
  });
  server.on('connection', (socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A deep backlog: benchmarks open a thousand connections at once.
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const root = `http://127.0.0.1:${port}`;
  const fake: FakeModel = {
    url: `${root}/v1`,
    anthropicURL: `${root}/anthropic/v1`,
    geminiURL: `${root}/gemini/v1beta`,
    mistralURL: `${root}/mistral/v1`,
    bedrockURL: `${root}/bedrock`,
    requests: [],
    enqueue(...turns) {
      queue.push(...turns);
    },
    onRequest(next) {
      handler = next;
    },
    defaultTurn: { text: 'Hello from the fake model.' },
    activeConnections: () => inFlight,
    embeddings: { delayMs: 0, failures: [] },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };

  function handle(request: IncomingMessage, response: ServerResponse, raw: string): void {
    const url = new URL(request.url ?? '/', 'http://fake');
    let body: any = null;
    let invalidJson = false;
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        invalidJson = true;
      }
    }
    const protocol = protocolOf(url.pathname);
    const recorded: RecordedRequest = {
      protocol,
      method: request.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: request.headers,
      body,
      receivedAt: Date.now(),
      chunksSent: 0,
    };
    fake.requests.push(recorded);

    if (protocol !== 'openai') {
      const routed: ProtocolRequest = { request, response, url, recorded, invalidJson, takeTurn: () => takeTurn(recorded) };
      return PROTOCOLS[protocol](routed);
    }
    if (invalidJson) return sendError(response, 400, 'We could not parse the JSON body of your request.');
    if (request.method === 'GET' && url.pathname.endsWith('/models')) {
      return sendJson(response, 200, {
        object: 'list',
        data: [{ id: 'fake-model', object: 'model', created: 0, owned_by: 'assistd-tests' }],
      });
    }
    if (request.method === 'POST' && url.pathname.endsWith('/embeddings')) {
      const failure = fake.embeddings.failures.shift();
      const answer = () => (failure !== undefined ? sendError(response, failure, defaultErrorMessage(failure)) : embeddings(response, body));
      if (fake.embeddings.delayMs <= 0) return answer();
      const timer = setTimeout(answer, fake.embeddings.delayMs);
      response.once('close', () => clearTimeout(timer));
      return;
    }
    if (request.method === 'POST' && url.pathname.endsWith('/chat/completions')) {
      return chatCompletion(recorded, response, takeTurn(recorded));
    }
    sendError(response, 404, `Unknown request URL: ${request.method} ${url.pathname}`);
  }

  function takeTurn(recorded: RecordedRequest): FakeTurn {
    return handler?.(recorded) ?? queue.shift() ?? fake.defaultTurn;
  }

  function chatCompletion(recorded: RecordedRequest, response: ServerResponse, turn: FakeTurn): void {
    const body = recorded.body ?? {};
    const model = typeof body.model === 'string' ? body.model : 'fake-model';
    const id = `chatcmpl-fake${(completionCounter += 1).toString(36)}`;
    const created = Math.floor(Date.now() / 1000);
    playTurn(recorded, response, turn, {
      error: (status, message, retryAfter) => sendError(response, status, message ?? defaultErrorMessage(status), retryAfter),
      streamErrorStatus: 503,
      stream:
        body.stream === true
          ? {
              headers: {
                'content-type': 'text/event-stream; charset=utf-8',
                'cache-control': 'no-cache',
                'x-request-id': `req_${randomBytes(8).toString('hex')}`,
              },
              frames: () => streamEvents(turn, id, created, model, body),
              errorFrame: (error) => streamErrorEvent(error),
            }
          : undefined,
      whole: () => sendJson(response, 200, completionObject(turn, id, created, model, body)),
    });
  }

  return fake;
}

// ------------------------------------------------------------------ chat completions

const PROTOCOLS: Record<Exclude<FakeProtocol, 'openai'>, (routed: ProtocolRequest) => void> = {
  anthropic: handleAnthropic,
  gemini: handleGemini,
  mistral: handleMistral,
  bedrock: handleBedrock,
};

/** The protocol of a path: its first segment when that names one, else OpenAI's. */
function protocolOf(path: string): FakeProtocol {
  const end = path.indexOf('/', 1);
  const first = path.slice(1, end === -1 ? undefined : end);
  return Object.hasOwn(PROTOCOLS, first) ? (first as FakeProtocol) : 'openai';
}

/** OpenAI's mid-stream error: a data event with an `error` object, then the stream ends. */
function streamErrorEvent(error: StreamError): string {
  const type = error.type ?? (error.status === 429 ? 'requests' : error.status >= 500 ? 'server_error' : 'invalid_request_error');
  return sse({ error: { message: error.message ?? defaultErrorMessage(error.status), type, param: null, code: null } });
}

function streamEvents(turn: FakeTurn, id: string, created: number, model: string, body: any): string[] {
  const toolCalls = withIds(turn.toolCalls ?? []);
  const pieces = textPieces(turn);
  const chunk = (delta: object, finishReason: string | null = null) =>
    sse({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...(includeUsage(body) ? { usage: null } : {}),
    });

  const events: string[] = [];
  // OpenAI's first chunk carries the role (and, for a tool-call-only answer, the first call piece).
  const firstCall = pieces.length === 0 ? toolCalls[0] : undefined;
  events.push(
    chunk(
      firstCall
        ? { role: 'assistant', content: null, tool_calls: [firstToolCallPiece(firstCall, 0)], refusal: null }
        : { role: 'assistant', content: '', refusal: null },
    ),
  );
  for (const piece of pieces) events.push(chunk({ content: piece }));
  toolCalls.forEach((call, index) => {
    if (call !== firstCall) events.push(chunk({ tool_calls: [firstToolCallPiece(call, index)] }));
    for (const argumentsPiece of splitArguments(call.arguments)) {
      events.push(chunk({ tool_calls: [{ index, function: { arguments: argumentsPiece } }] }));
    }
  });
  events.push(chunk({}, finishReasonOf(turn)));
  const usage = usageOf(turn, body, pieces.join(''), toolCalls);
  if (includeUsage(body) && usage) {
    events.push(sse({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices: [], usage }));
  }
  events.push('data: [DONE]\n\n');
  return events;
}

function completionObject(turn: FakeTurn, id: string, created: number, model: string, body: any): object {
  const toolCalls = withIds(turn.toolCalls ?? []);
  const text = wholeText(turn);
  const usage = usageOf(turn, body, text, toolCalls);
  return {
    id,
    object: 'chat.completion',
    created,
    model,
    system_fingerprint: 'fp_fake',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text === '' && toolCalls.length > 0 ? null : text,
          refusal: null,
          ...(toolCalls.length > 0
            ? {
                tool_calls: toolCalls.map((call) => ({
                  id: call.id,
                  type: 'function',
                  function: { name: call.name, arguments: call.arguments },
                })),
              }
            : {}),
        },
        logprobs: null,
        finish_reason: finishReasonOf(turn),
      },
    ],
    ...(usage ? { usage } : {}),
  };
}

function firstToolCallPiece(call: { id: string; name: string }, index: number) {
  return { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } };
}

function withIds(calls: NonNullable<FakeTurn['toolCalls']>): { name: string; arguments: string; id: string }[] {
  return toolCallsOf({ toolCalls: calls }, () => `call_${hexId(24)}`);
}

function includeUsage(body: any): boolean {
  return body?.stream_options?.include_usage === true;
}

function usageOf(turn: FakeTurn, body: any, text: string, toolCalls: { name: string; arguments: string }[]) {
  const counts = tokenCounts(turn, body?.messages, text, toolCalls);
  if (!counts) return null;
  const prompt = counts.input;
  const completion = counts.output;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

// ------------------------------------------------------------------ embeddings

function embeddings(response: ServerResponse, body: any): void {
  const input: unknown = body?.input;
  const inputs: unknown[] = typeof input === 'string' ? [input] : Array.isArray(input) ? input : [];
  // A flat token array is one input, not many.
  const texts = inputs.length > 0 && inputs.every((item) => typeof item === 'number') ? [inputs.join(' ')] : inputs.map((item) => (typeof item === 'string' ? item : JSON.stringify(item)));
  if (texts.length === 0) return sendError(response, 400, "'input' is a required property", undefined, 'input');
  const dimensions = Number.isInteger(body.dimensions) && body.dimensions > 0 ? body.dimensions : DEFAULT_EMBEDDING_DIMENSIONS;
  const { data, tokens } = embeddingData(texts, dimensions, body.encoding_format === 'base64');
  sendJson(response, 200, {
    object: 'list',
    data,
    model: typeof body.model === 'string' ? body.model : 'fake-embedding',
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

/** OpenAI's embedding list entries for `texts` (Mistral's are the same), and the tokens they count. */
export function embeddingData(texts: readonly string[], dimensions: number, base64 = false) {
  let tokens = 0;
  const data = texts.map((text, index) => {
    tokens += Math.max(1, Math.ceil(text.length / 4));
    const vector = embed(text, dimensions);
    return {
      object: 'embedding',
      index,
      embedding: base64 ? Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64') : Array.from(vector),
    };
  });
  return { data, tokens };
}

/**
 * Deterministic and unit-length. Words are hashed into dimensions (feature hashing), so texts that
 * share words are near each other and retrieval tests can find what they look for; a little noise
 * seeded from the hash of the whole text keeps different texts apart.
 */
export function embed(text: string, dimensions = DEFAULT_EMBEDDING_DIMENSIONS): Float32Array {
  const values = new Float64Array(dimensions);
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    const hash = fnv1a(word);
    values[hash % dimensions]! += hash & 0x8000_0000 ? -1 : 1;
  }
  let seed = fnv1a(text);
  for (let index = 0; index < dimensions; index += 1) {
    seed = (seed + 0x6d2b79f5) >>> 0;
    values[index]! += (mulberry32(seed) - 0.5) * 0.1;
  }
  let norm = 0;
  for (const value of values) norm += value * value;
  norm = Math.sqrt(norm) || 1;
  const vector = new Float32Array(dimensions);
  for (let index = 0; index < dimensions; index += 1) vector[index] = values[index]! / norm;
  return vector;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function mulberry32(seed: number): number {
  let value = seed;
  value = Math.imul(value ^ (value >>> 15), value | 1);
  value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
  return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
}

// ------------------------------------------------------------------ plumbing

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function sendError(response: ServerResponse, status: number, message: string, retryAfter?: string, param: string | null = null): void {
  const type =
    status === 401
      ? 'invalid_request_error'
      : status === 429
        ? 'requests'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error';
  const code = status === 401 ? 'invalid_api_key' : status === 429 ? 'rate_limit_exceeded' : status === 404 ? 'not_found' : null;
  sendJson(response, status, { error: { message, type, param, code } }, retryAfter !== undefined ? { 'retry-after': retryAfter } : {});
}

function defaultErrorMessage(status: number): string {
  if (status === 429) return 'Rate limit reached for requests. Please try again later.';
  if (status === 401) return 'Incorrect API key provided.';
  if (status >= 500) return 'The server had an error while processing your request. Sorry about that!';
  return 'Invalid request.';
}
