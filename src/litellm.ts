/**
 * LiteLLM's assistants functions in TypeScript: `createAssistants`, `getAssistants`, `deleteAssistant`,
 * `createThread`, `getThread`, `addMessage`, `getMessages`, `runThread`, `runThreadStream`, taking
 * LiteLLM's arguments in snake_case. With `api_base` (or `custom_llm_provider: "azure"`) they call a
 * remote Assistants API (assistd, or any other); without one they run the engine in this process, on
 * embedded storage, with no server and no port: requests go through the same routes in memory.
 */
import { resolve } from 'node:path';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { FastifyInstance } from 'fastify';
import type { AssistantObject, DeletedObject, ListObject, MessageObject, RunObject, ThreadObject } from './api/objects.js';
import { loadConfig, parseConfig, type Config } from './config.js';
import { startServer, type RunningServer } from './server.js';
import { isTerminal } from './engine/run-state.js';

type Env = Record<string, string | undefined>;

/** The connection arguments every function takes, as LiteLLM names them. */
export interface LiteLLMParams {
  /** `openai` (the default) or `azure`. */
  custom_llm_provider?: 'openai' | 'azure';
  /** A remote Assistants API (e.g. `http://localhost:4000/v1`). None (and `openai`): the engine runs in this process. */
  api_base?: string | null;
  /** The remote's key (default OPENAI_API_KEY, or AZURE_API_KEY for azure). */
  api_key?: string | null;
  /** Azure's `api-version` (default AZURE_API_VERSION, else 2024-05-01-preview). */
  api_version?: string | null;
  /** Remote calls: the request timeout in seconds (default 600). */
  timeout?: number;
}

type ListParams = { limit?: number; order?: 'asc' | 'desc'; after?: string; before?: string };
type Body = Record<string, unknown>;

export interface CreateAssistantParams extends LiteLLMParams {
  model: string;
  name?: string | null;
  description?: string | null;
  instructions?: string | null;
  tools?: Body[];
  tool_resources?: Body | null;
  metadata?: Record<string, string> | null;
  temperature?: number | null;
  top_p?: number | null;
  response_format?: unknown;
}

export interface MessageParams {
  role: 'user' | 'assistant';
  content: string | Body[];
  attachments?: Body[] | null;
  metadata?: Record<string, string> | null;
}

export interface RunParams extends LiteLLMParams {
  thread_id: string;
  assistant_id: string;
  additional_instructions?: string | null;
  instructions?: string | null;
  metadata?: Record<string, string> | null;
  model?: string | null;
  tools?: Body[] | null;
  stream?: boolean;
  /** Anything else the run create body takes (additional_messages, tool_choice, …) is passed on. */
  [key: string]: unknown;
}

/** An error the Assistants API answered with: its status and OpenAI's error fields. */
export class AssistantsAPIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string | null,
    readonly code: string | null,
    readonly param: string | null,
  ) {
    super(message);
    this.name = 'AssistantsAPIError';
  }
}

// ------------------------------------------------------------------ transports

interface TransportResponse {
  status: number;
  header(name: string): string | null;
  body(): AsyncIterable<Uint8Array>;
  text(): Promise<string>;
}

interface Transport {
  request(method: string, path: string, body?: unknown, query?: Record<string, string | number | undefined>): Promise<TransportResponse>;
}

const LITELLM_KEYS = new Set(['custom_llm_provider', 'api_base', 'api_key', 'api_version', 'timeout']);
const DEFAULT_TIMEOUT_SECONDS = 600;
const AZURE_ASSISTANTS_API_VERSION = '2024-05-01-preview';

function remoteTransport(params: LiteLLMParams, env: Env): Transport | null {
  const provider = params.custom_llm_provider ?? 'openai';
  if (provider !== 'openai' && provider !== 'azure') throw new TypeError(`custom_llm_provider must be "openai" or "azure", not ${JSON.stringify(provider)}`);
  const apiBase = params.api_base ?? (provider === 'azure' ? env.AZURE_API_BASE : undefined);
  if (!apiBase) {
    if (provider === 'azure') throw new TypeError('custom_llm_provider "azure" needs api_base (or AZURE_API_BASE)');
    return null;
  }
  const headers: Record<string, string> = { 'openai-beta': 'assistants=v2', accept: 'application/json' };
  const query: Record<string, string> = {};
  let root = apiBase.replace(/\/+$/, '');
  if (provider === 'azure') {
    root = `${root}/openai`;
    const key = params.api_key ?? env.AZURE_API_KEY;
    if (key) headers['api-key'] = key;
    query['api-version'] = params.api_version ?? env.AZURE_API_VERSION ?? AZURE_ASSISTANTS_API_VERSION;
  } else {
    const key = params.api_key ?? env.OPENAI_API_KEY;
    if (key) headers.authorization = `Bearer ${key}`;
  }
  const timeoutMs = (params.timeout ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
  return {
    async request(method, path, body, extraQuery) {
      const url = new URL(root + path);
      for (const [name, value] of Object.entries({ ...query, ...extraQuery })) if (value !== undefined) url.searchParams.set(name, String(value));
      const response = await fetch(url, {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      return {
        status: response.status,
        header: (name) => response.headers.get(name),
        body: () => (response.body ?? new ReadableStream<Uint8Array>()) as unknown as AsyncIterable<Uint8Array>,
        text: () => response.text(),
      };
    },
  };
}

/** The in-process engine: one per process, started on first use, on embedded storage in ./.assistd (or ASSISTD_DATA_DIR). */
let local: Promise<RunningServer> | null = null;

export interface LocalOptions {
  /** The embedded storage directory (default ASSISTD_DATA_DIR, else ./.assistd). */
  dataDir?: string;
  /** A config file path or a parsed config (default ASSISTD_CONFIG, else none: models from the environment). */
  config?: string | Config;
}

/**
 * Sets up the in-process engine before first use (optional: the functions start it with defaults).
 * Calling it again after `closeLocal` starts a new one.
 */
export function configureLocal(options: LocalOptions = {}): Promise<void> {
  if (local) throw new Error('the in-process engine is already started; call closeLocal() first');
  local = startLocal(options);
  return local.then(() => undefined);
}

/** Stops the in-process engine: runs in flight finish (or are resumed at the next start), storage closes. */
export async function closeLocal(): Promise<void> {
  const running = local;
  local = null;
  if (running) await (await running).close();
}

async function startLocal(options: LocalOptions): Promise<RunningServer> {
  const configSource = options.config ?? process.env.ASSISTD_CONFIG;
  const loaded = typeof configSource === 'string' ? loadConfig(configSource) : (configSource ?? parseConfig({}));
  // No socket, so no key: only this process can reach it.
  const config: Config = { ...loaded, masterKey: null };
  return startServer({
    config,
    dataDir: resolve(options.dataDir ?? process.env.ASSISTD_DATA_DIR ?? '.assistd'),
    port: 0,
    host: '127.0.0.1',
    listen: false,
  });
}

function localTransport(): Transport {
  local ??= startLocal({});
  const started = local;
  return {
    async request(method, path, body, query) {
      const app: FastifyInstance = (await started).app;
      const response = await app.inject({
        method: method as 'GET',
        url: path,
        query: Object.fromEntries(Object.entries(query ?? {}).flatMap(([name, value]) => (value === undefined ? [] : [[name, String(value)]]))),
        headers: { 'openai-beta': 'assistants=v2', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
        payloadAsStream: true,
      });
      const stream = response.stream();
      return {
        status: response.statusCode,
        header: (name) => {
          const value = response.headers[name.toLowerCase()];
          return value === undefined ? null : String(value);
        },
        body: () => stream,
        text: async () => {
          const chunks: Buffer[] = [];
          for await (const chunk of stream) chunks.push(chunk as Buffer);
          return Buffer.concat(chunks).toString('utf8');
        },
      };
    },
  };
}

function transportFor(params: LiteLLMParams): Transport {
  return remoteTransport(params, process.env) ?? localTransport();
}

/** The call's own fields: everything but LiteLLM's connection arguments. */
function fields(params: object, omit: string[] = []): Body {
  return Object.fromEntries(Object.entries(params).filter(([key, value]) => !LITELLM_KEYS.has(key) && !omit.includes(key) && value !== undefined));
}

async function json<T>(response: TransportResponse): Promise<T> {
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    throw new AssistantsAPIError(response.status, `the Assistants API answered ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`, null, null, null);
  }
  if (response.status >= 400) throw apiError(response.status, parsed);
  return parsed as T;
}

function apiError(status: number, body: unknown): AssistantsAPIError {
  const error = (body as { error?: { message?: unknown; type?: unknown; code?: unknown; param?: unknown } } | null)?.error;
  const text = (value: unknown) => (typeof value === 'string' ? value : null);
  return new AssistantsAPIError(status, text(error?.message) ?? `the Assistants API answered ${status}`, text(error?.type), text(error?.code), text(error?.param));
}

async function call<T>(params: LiteLLMParams, method: string, path: string, body?: unknown, query?: Record<string, string | number | undefined>): Promise<T> {
  return json<T>(await transportFor(params).request(method, path, body, query));
}

const id = (value: string, name: string) => {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} is required`);
  return encodeURIComponent(value);
};

// ------------------------------------------------------------------ the functions

export function createAssistants(params: CreateAssistantParams): Promise<AssistantObject> {
  return call(params, 'POST', '/assistants', fields(params));
}

export function getAssistants(params: LiteLLMParams & ListParams = {}): Promise<ListObject<AssistantObject>> {
  return call(params, 'GET', '/assistants', undefined, fields(params) as Record<string, string | number>);
}

export function deleteAssistant(params: LiteLLMParams & { assistant_id: string }): Promise<DeletedObject> {
  return call(params, 'DELETE', `/assistants/${id(params.assistant_id, 'assistant_id')}`);
}

export function createThread(params: LiteLLMParams & { messages?: MessageParams[]; metadata?: Record<string, string> | null; tool_resources?: Body | null } = {}): Promise<ThreadObject> {
  return call(params, 'POST', '/threads', fields(params));
}

export function getThread(params: LiteLLMParams & { thread_id: string }): Promise<ThreadObject> {
  return call(params, 'GET', `/threads/${id(params.thread_id, 'thread_id')}`);
}

export function addMessage(params: LiteLLMParams & MessageParams & { thread_id: string }): Promise<MessageObject> {
  return call(params, 'POST', `/threads/${id(params.thread_id, 'thread_id')}/messages`, fields(params, ['thread_id']));
}

export function getMessages(params: LiteLLMParams & ListParams & { thread_id: string; run_id?: string }): Promise<ListObject<MessageObject>> {
  return call(params, 'GET', `/threads/${id(params.thread_id, 'thread_id')}/messages`, undefined, fields(params, ['thread_id']) as Record<string, string | number>);
}


/** The run's create body. `role` and `content`, which the seed's streaming example spreads in, are not run fields: ignored, as LiteLLM ignores them. */
function runBody(params: RunParams): Body {
  return fields(params, ['thread_id', 'role', 'content', 'stream']);
}

/**
 * Creates a run and polls it until it settles (completed, failed, requires_action, …), as LiteLLM's
 * `run_thread` does; with `stream: true` it is `runThreadStream`.
 */
export function runThread(params: RunParams & { stream: true }): Promise<AssistantRunStream>;
export function runThread(params: RunParams): Promise<RunObject>;
export async function runThread(params: RunParams): Promise<RunObject | AssistantRunStream> {
  if (params.stream === true) return runThreadStream(params);
  const transport = transportFor(params);
  const threadId = id(params.thread_id, 'thread_id');
  let response = await transport.request('POST', `/threads/${threadId}/runs`, runBody(params));
  for (;;) {
    const run = await json<RunObject>(response);
    if (isTerminal(run.status) || run.status === 'requires_action') return run;
    const wait = Number(response.header('openai-poll-after-ms') ?? 500);
    await new Promise((done) => setTimeout(done, Number.isFinite(wait) && wait >= 0 ? wait : 500));
    response = await transport.request('GET', `/threads/${threadId}/runs/${encodeURIComponent(run.id)}`);
  }
}

/** One event of a run's stream: its name and its object, as the API sends them. */
export interface AssistantStreamEvent {
  event: string;
  data: any;
}

/**
 * A streamed run: iterate it for events (`for await (const event of stream)`), or await
 * `untilDone()` / `finalRun()` / `finalMessages()` — the counterpart of the Python SDK's
 * AssistantEventHandler with `until_done()`. An `error` event is thrown.
 */
export class AssistantRunStream implements AsyncIterable<AssistantStreamEvent> {
  private readonly iterator: AsyncGenerator<AssistantStreamEvent>;
  private run: RunObject | null = null;
  private readonly messages = new Map<string, MessageObject>();

  constructor(source: AsyncIterable<AssistantStreamEvent>) {
    this.iterator = this.track(source);
  }

  private async *track(source: AsyncIterable<AssistantStreamEvent>): AsyncGenerator<AssistantStreamEvent> {
    for await (const event of source) {
      if (event.event.startsWith('thread.run.') && !event.event.startsWith('thread.run.step.')) this.run = event.data as RunObject;
      if (event.event === 'thread.message.completed' || event.event === 'thread.message.incomplete') {
        const message = event.data as MessageObject;
        this.messages.set(message.id, message);
      }
      yield event;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<AssistantStreamEvent> {
    return this.iterator;
  }

  /** Reads the rest of the stream. */
  async untilDone(): Promise<void> {
    for (;;) {
      const { done } = await this.iterator.next();
      if (done) return;
    }
  }

  /** The run as its last event left it (completed, requires_action, failed, …). */
  async finalRun(): Promise<RunObject> {
    await this.untilDone();
    if (!this.run) throw new Error('the stream ended without a run event');
    return this.run;
  }

  /** The messages the run completed, in order. */
  async finalMessages(): Promise<MessageObject[]> {
    await this.untilDone();
    return [...this.messages.values()];
  }

  /** The run as the events so far describe it. */
  currentRun(): RunObject | null {
    return this.run;
  }
}

async function* sseEvents(response: TransportResponse): AsyncGenerator<AssistantStreamEvent> {
  const pending: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => pending.push(event) });
  const decoder = new TextDecoder();
  for await (const chunk of response.body()) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    for (const message of pending.splice(0)) {
      if (message.event === 'done' || message.data === '[DONE]') return;
      const data: unknown = JSON.parse(message.data);
      if (message.event === 'error') {
        const error = (data as { error?: unknown }).error ?? data;
        throw apiError(500, { error });
      }
      yield { event: message.event ?? 'message', data };
    }
  }
}

/** Creates a streamed run (`stream: true`) and returns its events as they come. */
export async function runThreadStream(params: RunParams): Promise<AssistantRunStream> {
  const response = await transportFor(params).request('POST', `/threads/${id(params.thread_id, 'thread_id')}/runs`, { ...runBody(params), stream: true });
  if (response.status >= 400) await json(response);
  return new AssistantRunStream(sseEvents(response));
}
