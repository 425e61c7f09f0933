/**
 * A scripted fake model: a real HTTP server speaking OpenAI's chat completions (streamed exactly as
 * OpenAI streams them, or whole) and embeddings. Each chat request takes the next scripted turn.
 * Built for speed as well as tests: a benchmark drives 1,000 concurrent slow streams through it.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeTurn {
  /** Streamed split into word-ish chunks (spaces kept), unless `chunks` is given. */
  text?: string;
  chunks?: string[];
  /** Streamed like OpenAI: first piece id+name, then the arguments in a few pieces. */
  toolCalls?: { name: string; arguments: string; id?: string }[];
  /** Default: `tool_calls` when there are tool calls, else `stop`. */
  finishReason?: 'stop' | 'length' | 'tool_calls' | 'content_filter';
  /** Default: computed roughly from lengths. `null`: no usage at all (a server ignoring `include_usage`). */
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
  /** Delay between stream chunks (slow streams). */
  chunkDelayMs?: number;
  /** Delay before the response headers. */
  firstByteDelayMs?: number;
  /** An error response in OpenAI's error shape. */
  status?: number;
  errorMessage?: string;
  retryAfter?: string;
  /** Destroy the socket after this many SSE events (a broken stream). */
  breakAfterChunks?: number;
  /** Accept the request and never answer. */
  hang?: boolean;
}

export interface RecordedRequest {
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

  const fake: FakeModel = {
    url: `http://127.0.0.1:${port}/v1`,
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
    const recorded: RecordedRequest = {
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: request.headers,
      body,
      receivedAt: Date.now(),
      chunksSent: 0,
    };
    fake.requests.push(recorded);

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
      const turn = handler?.(recorded) ?? queue.shift() ?? fake.defaultTurn;
      return chatCompletion(recorded, response, turn);
    }
    sendError(response, 404, `Unknown request URL: ${request.method} ${url.pathname}`);
  }

  function chatCompletion(recorded: RecordedRequest, response: ServerResponse, turn: FakeTurn): void {
    if (turn.hang) return; // answered by close(), or by the client going away
    const respond = () => {
      if (response.destroyed) return;
      if (turn.status !== undefined && (turn.status < 200 || turn.status >= 300)) {
        return sendError(response, turn.status, turn.errorMessage ?? defaultErrorMessage(turn.status), turn.retryAfter);
      }
      const body = recorded.body ?? {};
      const model = typeof body.model === 'string' ? body.model : 'fake-model';
      const id = `chatcmpl-fake${(completionCounter += 1).toString(36)}`;
      const created = Math.floor(Date.now() / 1000);
      if (body.stream === true) {
        const events = streamEvents(turn, id, created, model, body);
        return writeStream(recorded, response, events, turn.chunkDelayMs ?? 0, turn.breakAfterChunks);
      }
      if (turn.breakAfterChunks !== undefined) {
        response.socket?.destroy();
        return;
      }
      sendJson(response, 200, completionObject(turn, id, created, model, body));
    };
    if (turn.firstByteDelayMs && turn.firstByteDelayMs > 0) {
      const timer = setTimeout(respond, turn.firstByteDelayMs);
      response.once('close', () => clearTimeout(timer));
    } else {
      respond();
    }
  }

  return fake;
}

// ------------------------------------------------------------------ chat completions

function writeStream(
  recorded: RecordedRequest,
  response: ServerResponse,
  events: string[],
  delayMs: number,
  breakAfter: number | undefined,
): void {
  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': `req_${randomBytes(8).toString('hex')}`,
  });
  response.flushHeaders();
  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  response.once('close', () => clearTimeout(timer));

  // Writes events until one needs a delay (then a timer continues), a loop rather than recursion
  // so undelayed streams of any length never grow the stack.
  const writeNext = (): void => {
    timer = undefined;
    for (;;) {
      if (response.destroyed) return;
      if (breakAfter !== undefined && next >= breakAfter) {
        response.socket?.destroy();
        return;
      }
      if (next === events.length) {
        response.end();
        return;
      }
      const event = events[next++]!;
      recorded.chunksSent = next;
      if (breakAfter !== undefined && next >= breakAfter) {
        // Let the last event reach the client before the connection breaks.
        response.write(event, () => response.socket?.destroy());
        return;
      }
      response.write(event);
      if (delayMs > 0) {
        timer = setTimeout(writeNext, delayMs);
        return;
      }
    }
  };
  writeNext();
}

function streamEvents(turn: FakeTurn, id: string, created: number, model: string, body: any): string[] {
  const toolCalls = withIds(turn.toolCalls ?? []);
  const pieces = turn.chunks ?? splitWords(turn.text ?? '');
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
  const text = turn.chunks ? turn.chunks.join('') : (turn.text ?? '');
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
  return calls.map((call) => ({ ...call, id: call.id ?? `call_${randomBytes(12).toString('hex').slice(0, 24)}` }));
}

function finishReasonOf(turn: FakeTurn): string {
  return turn.finishReason ?? (turn.toolCalls && turn.toolCalls.length > 0 ? 'tool_calls' : 'stop');
}

function includeUsage(body: any): boolean {
  return body?.stream_options?.include_usage === true;
}

function usageOf(turn: FakeTurn, body: any, text: string, toolCalls: { name: string; arguments: string }[]) {
  if (turn.usage === null) return null;
  const prompt = turn.usage?.prompt_tokens ?? Math.max(1, Math.ceil(JSON.stringify(body?.messages ?? []).length / 4));
  const completionLength = text.length + toolCalls.reduce((sum, call) => sum + call.name.length + call.arguments.length, 0);
  const completion = turn.usage?.completion_tokens ?? Math.max(1, Math.ceil(completionLength / 4));
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

/** "Hello there, world" → ["Hello", " there,", " world"]: joined, they give the text back. */
function splitWords(text: string): string[] {
  return text.match(/\s*\S+|\s+/g) ?? [];
}

function splitArguments(text: string): string[] {
  if (text === '') return [];
  const size = Math.max(1, Math.ceil(text.length / 3));
  const pieces: string[] = [];
  for (let start = 0; start < text.length; start += size) pieces.push(text.slice(start, start + size));
  return pieces;
}

function sse(data: object): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

// ------------------------------------------------------------------ embeddings

function embeddings(response: ServerResponse, body: any): void {
  const input: unknown = body?.input;
  const inputs: unknown[] = typeof input === 'string' ? [input] : Array.isArray(input) ? input : [];
  // A flat token array is one input, not many.
  const texts = inputs.length > 0 && inputs.every((item) => typeof item === 'number') ? [inputs.join(' ')] : inputs.map((item) => (typeof item === 'string' ? item : JSON.stringify(item)));
  if (texts.length === 0) return sendError(response, 400, "'input' is a required property", undefined, 'input');
  const dimensions = Number.isInteger(body.dimensions) && body.dimensions > 0 ? body.dimensions : DEFAULT_EMBEDDING_DIMENSIONS;
  const base64 = body.encoding_format === 'base64';
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
  sendJson(response, 200, {
    object: 'list',
    data,
    model: typeof body.model === 'string' ? body.model : 'fake-embedding',
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
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

function sendJson(response: ServerResponse, status: number, body: object, extraHeaders: Record<string, string> = {}): void {
  if (response.destroyed) return;
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  response.end(text);
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
