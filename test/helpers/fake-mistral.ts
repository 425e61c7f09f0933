/**
 * The fake model's Mistral chat completions (`POST /mistral/v1/chat/completions`): OpenAI-like, as
 * Mistral streams it — usage always, and only in the last chunk; each tool call whole in one delta
 * (9-character alphanumeric id, name and full arguments); Mistral's request checks (tool call ids,
 * calls answered one for one, no `stream_options`) and error bodies
 * `{"object":"error","message","type","param","code","raw_status_code"}`.
 */
import type { ServerResponse } from 'node:http';
import { embeddingData, type FakeTurn } from './fake-model.js';
import {
  base62,
  finishReasonOf,
  header,
  hexId,
  isObject,
  playTurn,
  sendJson,
  sse,
  textPieces,
  tokenCounts,
  toolCallsOf,
  wholeText,
  type ProtocolRequest,
  type StreamError,
  type ToolCall,
} from './fake-wire.js';

const ERRORS: Record<number, { type: string; code: string | null; message: string }> = {
  400: { type: 'invalid_request_error', code: null, message: 'Invalid request' },
  404: { type: 'invalid_request_error', code: '1500', message: 'Invalid model' },
  422: { type: 'invalid_request_error', code: null, message: 'Unprocessable entity' },
  429: { type: 'rate_limited', code: '1300', message: 'Rate limit exceeded' },
  500: { type: 'internal_server_error', code: '1000', message: 'Internal server error' },
  503: { type: 'service_unavailable', code: '1100', message: 'Service unavailable' },
};

function errorBody(status: number, message?: string | object, type?: string, code?: string | null) {
  const known = ERRORS[status] ?? (status >= 500 ? ERRORS[500]! : ERRORS[400]!);
  return { object: 'error', message: message ?? known.message, type: type ?? known.type, param: null, code: code === undefined ? known.code : code, raw_status_code: status };
}

export function sendMistralError(response: ServerResponse, status: number, message?: string | object, retryAfter?: string, type?: string, code?: string | null): void {
  const headers: Record<string, string> = { 'mistral-correlation-id': correlationId(), ...(retryAfter !== undefined ? { 'retry-after': retryAfter } : {}) };
  if (status === 401) return sendJson(response, 401, { message: 'Unauthorized', request_id: hexId(32) }, headers);
  sendJson(response, status, errorBody(status, message, type, code), headers);
}

function correlationId(): string {
  const hex = hexId(32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const TOOL_CALL_ID = /^[a-zA-Z0-9]{9}$/;

/** Mistral's embeddings (`POST /mistral/v1/embeddings`): OpenAI's shape, 1024 dimensions (mistral-embed's). */
function embeddings(response: ServerResponse, body: any): void {
  const input: unknown = body?.input;
  const texts = typeof input === 'string' ? [input] : Array.isArray(input) ? input.map(String) : [];
  if (texts.length === 0) return sendMistralError(response, 422, 'input: Field required');
  const { data, tokens } = embeddingData(texts, 1024);
  sendJson(response, 200, { id: hexId(32), object: 'list', data, model: String(body?.model ?? 'mistral-embed'), usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 } });
}

export function handleMistral({ request, response, url, recorded, invalidJson, takeTurn }: ProtocolRequest): void {
  if (request.method === 'POST' && url.pathname === '/mistral/v1/embeddings') {
    if (!/^Bearer \S+/.test(header(request, 'authorization') ?? '')) return sendMistralError(response, 401);
    if (invalidJson) return sendMistralError(response, 400, 'Invalid JSON body');
    return embeddings(response, recorded.body);
  }
  if (request.method !== 'POST' || url.pathname !== '/mistral/v1/chat/completions') {
    return sendJson(response, 404, { detail: 'Not Found' });
  }
  if (!/^Bearer \S+/.test(header(request, 'authorization') ?? '')) return sendMistralError(response, 401);
  if (invalidJson) return sendMistralError(response, 400, 'Invalid JSON body');
  const body = recorded.body;
  if (!isObject(body)) return sendMistralError(response, 422, { detail: [{ type: 'model_attributes_type', loc: ['body'], msg: 'Input should be a valid dictionary or object to extract fields from' }] });
  const problem = validate(body);
  if (problem) return sendMistralError(response, problem.status, problem.message, undefined, problem.type, problem.code);

  const turn = takeTurn();
  const model = String(body.model);
  const id = hexId(32);
  const created = Math.floor(Date.now() / 1000);
  const toolCalls = toolCallsOf(turn, () => base62(9));
  playTurn(recorded, response, turn, {
    error: (status, message, retryAfter) => sendMistralError(response, status, message, retryAfter),
    streamErrorStatus: 503,
    stream:
      body.stream === true
        ? {
            headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'mistral-correlation-id': correlationId() },
            frames: () => streamEvents(turn, id, created, model, body, toolCalls),
            errorFrame: (error) => errorEvent(error),
          }
        : undefined,
    whole: () => sendJson(response, 200, completion(turn, id, created, model, body, toolCalls), { 'mistral-correlation-id': correlationId() }),
  });
}

interface Problem {
  status: number;
  message: string | object;
  type: string;
  code: string | null;
}

/** Mistral's checks that trip clients written for OpenAI. */
function validate(body: Record<string, any>): Problem | undefined {
  if (body.stream_options !== undefined) {
    return {
      status: 422,
      message: { detail: [{ type: 'extra_forbidden', loc: ['body', 'stream_options'], msg: 'Extra inputs are not permitted', input: body.stream_options }] },
      type: 'invalid_request_error',
      code: null,
    };
  }
  if (typeof body.model !== 'string') {
    return { status: 422, message: { detail: [{ type: 'missing', loc: ['body', 'model'], msg: 'Field required', input: null }] }, type: 'invalid_request_error', code: null };
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    return { status: 422, message: { detail: [{ type: 'missing', loc: ['body', 'messages'], msg: 'Field required', input: null }] }, type: 'invalid_request_error', code: null };
  }
  const badId = (value: unknown): Problem => ({
    status: 400,
    message: `Tool call id was ${value === undefined || value === null ? 'None' : String(value)} but must be a-z, A-Z, 0-9, with a length of 9.`,
    type: 'invalid_function_call',
    code: '3280',
  });
  const messages: any[] = body.messages;
  for (const [index, message] of messages.entries()) {
    if (message?.role === 'assistant' && Array.isArray(message.tool_calls)) {
      for (const call of message.tool_calls) if (!TOOL_CALL_ID.test(String(call?.id))) return badId(call?.id);
      // Each call is answered by one tool message, right after.
      let answers = 0;
      while (messages[index + 1 + answers]?.role === 'tool') answers += 1;
      if (answers !== message.tool_calls.length && index + 1 < messages.length) {
        return { status: 400, message: 'Not the same number of function calls and responses', type: 'invalid_request_message_order', code: '3230' };
      }
    }
    if (message?.role === 'tool') {
      if (!TOOL_CALL_ID.test(String(message.tool_call_id))) return badId(message.tool_call_id);
      const previous = messages[index - 1];
      if (previous?.role !== 'tool' && !(previous?.role === 'assistant' && Array.isArray(previous.tool_calls))) {
        return { status: 400, message: `Unexpected role 'tool' after role '${String(previous?.role ?? 'none')}'`, type: 'invalid_request_message_order', code: '3230' };
      }
    }
  }
  return undefined;
}

function usage(turn: FakeTurn, body: any, text: string, toolCalls: ToolCall[]) {
  const counts = tokenCounts(turn, body?.messages, text, toolCalls);
  return counts ? { prompt_tokens: counts.input, total_tokens: counts.input + counts.output, completion_tokens: counts.output } : undefined;
}

function streamEvents(turn: FakeTurn, id: string, created: number, model: string, body: any, toolCalls: ToolCall[]): string[] {
  const pieces = textPieces(turn);
  const chunk = (delta: object, finishReason: string | null = null, extra: object = {}) =>
    sse({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finishReason }], ...extra });
  const events = [chunk({ role: 'assistant', content: '' })];
  for (const piece of pieces) events.push(chunk({ content: piece }));
  const calls = toolCalls.map((call, index) => ({ content: null, tool_calls: [{ id: call.id, function: { name: call.name, arguments: call.arguments }, index }] }));
  const last = calls.pop() ?? { content: '' };
  for (const delta of calls) events.push(chunk(delta));
  // The last chunk carries the finish reason and the usage (the last tool call when there are some).
  const totals = usage(turn, body, pieces.join(''), toolCalls);
  events.push(chunk(last, finishReasonOf(turn), totals ? { usage: totals } : {}));
  events.push('data: [DONE]\n\n');
  return events;
}

function errorEvent(error: StreamError): string {
  const known = ERRORS[error.status] ?? ERRORS[500]!;
  return sse(errorBody(error.status, error.message, error.type ?? known.type));
}

function completion(turn: FakeTurn, id: string, created: number, model: string, body: any, toolCalls: ToolCall[]): object {
  const text = wholeText(turn);
  const totals = usage(turn, body, text, toolCalls);
  return {
    id,
    object: 'chat.completion',
    model,
    created,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text,
          tool_calls:
            toolCalls.length > 0
              ? toolCalls.map((call, index) => ({ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments }, index }))
              : null,
          prefix: false,
        },
        finish_reason: finishReasonOf(turn),
      },
    ],
    ...(totals ? { usage: totals } : {}),
  };
}
