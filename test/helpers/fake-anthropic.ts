/**
 * The fake model's Anthropic Messages API (`POST /anthropic/v1/messages`): the Message JSON, or with
 * `stream: true` the named SSE events Anthropic sends (message_start, content_block_start, ping,
 * content_block_delta, content_block_stop, message_delta, message_stop; `error` mid-stream), and
 * Anthropic's error bodies `{"type":"error","error":{type,message},"request_id"}`.
 */
import type { ServerResponse } from 'node:http';
import type { FakeTurn } from './fake-model.js';
import {
  argumentsObject,
  base62,
  finishReasonOf,
  header,
  isObject,
  playTurn,
  sendJson,
  splitArguments,
  sse,
  textPieces,
  tokenCounts,
  toolCallsOf,
  wholeText,
  type ProtocolRequest,
  type StreamError,
  type ToolCall,
} from './fake-wire.js';

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  503: 'overloaded_error',
  504: 'timeout_error',
  529: 'overloaded_error',
};

const ERROR_MESSAGES: Record<string, string> = {
  invalid_request_error: 'Invalid request.',
  authentication_error: 'invalid x-api-key',
  billing_error: 'Your credit balance is too low to access the Anthropic API.',
  permission_error: 'Your API key does not have permission to use the specified resource.',
  not_found_error: 'Not found.',
  request_too_large: 'Request exceeds the maximum allowed number of bytes.',
  rate_limit_error: 'Number of request tokens has exceeded your per-minute rate limit.',
  api_error: 'Internal server error',
  overloaded_error: 'Overloaded',
  timeout_error: 'Request timed out.',
};

function errorType(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
}

function requestId(): string {
  return `req_011C${base62(20)}`;
}

export function sendAnthropicError(response: ServerResponse, status: number, message?: string, retryAfter?: string, type = errorType(status)): void {
  const id = requestId();
  sendJson(
    response,
    status,
    { type: 'error', error: { type, message: message ?? ERROR_MESSAGES[type] ?? 'Error' }, request_id: id },
    { 'request-id': id, ...(retryAfter !== undefined ? { 'retry-after': retryAfter } : {}), ...(status === 401 ? { 'x-should-retry': 'false' } : {}) },
  );
}

export function handleAnthropic({ request, response, url, recorded, invalidJson, takeTurn }: ProtocolRequest): void {
  const fail = (status: number, message: string) => sendAnthropicError(response, status, message);
  if (request.method !== 'POST' || url.pathname !== '/anthropic/v1/messages') {
    return sendAnthropicError(response, 404, `Not Found: ${request.method} ${url.pathname.replace(/^\/anthropic/, '')}`);
  }
  // An API key comes as `x-api-key`, or (the official SDK since API version 2026-10-21, and OAuth tokens) as a bearer token.
  if (!header(request, 'x-api-key') && !/^Bearer \S+/.test(header(request, 'authorization') ?? '')) {
    return sendAnthropicError(response, 401, 'x-api-key header is required');
  }
  if (!header(request, 'anthropic-version')) return fail(400, 'anthropic-version: header is required');
  if (invalidJson) return fail(400, 'There was an error parsing the body of your request. Make sure it is valid JSON.');
  const body = recorded.body;
  if (!isObject(body)) return fail(400, 'Input should be an object');
  const problem = validate(body);
  if (problem) return fail(400, problem);

  const turn = takeTurn();
  const model = String(body.model);
  const id = `msg_01${base62(22)}`;
  const toolCalls = toolCallsOf(turn, () => `toolu_01${base62(22)}`);
  const prompt = { system: body.system, messages: body.messages, tools: body.tools };
  playTurn(recorded, response, turn, {
    error: (status, message, retryAfter) => sendAnthropicError(response, status, message, retryAfter),
    streamErrorStatus: 529,
    stream:
      body.stream === true
        ? {
            headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': requestId() },
            frames: () => streamEvents(turn, id, model, prompt, toolCalls),
            errorFrame: (error) => errorEvent(error),
          }
        : undefined,
    whole: () => sendJson(response, 200, message(turn, id, model, prompt, toolCalls), { 'request-id': requestId() }),
  });
}

/** Anthropic's request checks that matter to a client: required fields, roles, tool_use / tool_result pairing. */
function validate(body: Record<string, any>): string | undefined {
  if (body.model === undefined) return 'model: Field required';
  if (body.max_tokens === undefined) return 'max_tokens: Field required';
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return 'max_tokens: Input should be a valid integer greater than or equal to 1';
  if (body.messages === undefined) return 'messages: Field required';
  if (!Array.isArray(body.messages)) return 'messages: Input should be a valid list';
  const messages: any[] = body.messages;
  for (const [index, item] of messages.entries()) {
    if (item?.role !== 'user' && item?.role !== 'assistant') return `messages.${index}.role: Input should be 'user' or 'assistant'`;
    if (item.content === undefined) return `messages.${index}.content: Field required`;
  }
  for (const [index, item] of messages.entries()) {
    const blocks = (content: unknown, type: string): any[] => (Array.isArray(content) ? content.filter((block: any) => block?.type === type) : []);
    const results = blocks(item.content, 'tool_result');
    if (results.length > 0) {
      const previous = messages[index - 1];
      const uses = new Set(previous?.role === 'assistant' ? blocks(previous.content, 'tool_use').map((block) => block.id) : []);
      const stray = results.filter((block) => !uses.has(block.tool_use_id)).map((block) => String(block.tool_use_id));
      if (stray.length > 0) {
        const at = (item.content as any[]).findIndex((block) => block?.type === 'tool_result' && !uses.has(block.tool_use_id));
        return `messages.${index}.content.${at}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${stray.join(', ')}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
      }
    }
    const uses = item.role === 'assistant' ? blocks(item.content, 'tool_use') : [];
    if (uses.length > 0 && index < messages.length - 1) {
      const next = messages[index + 1];
      const answered = new Set(next?.role === 'user' ? blocks(next.content, 'tool_result').map((block) => block.tool_use_id) : []);
      const missing = uses.filter((block) => !answered.has(block.id)).map((block) => String(block.id));
      if (missing.length > 0) {
        return `messages.${index}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
      }
    }
  }
  return undefined;
}

function stopReason(turn: FakeTurn): string {
  const reason = finishReasonOf(turn);
  return reason === 'length' ? 'max_tokens' : reason === 'tool_calls' ? 'tool_use' : reason === 'content_filter' ? 'refusal' : 'end_turn';
}

function counts(turn: FakeTurn, prompt: object, text: string, toolCalls: ToolCall[]) {
  // Every Anthropic message carries usage: `usage: null` in a turn still reports the estimate.
  return tokenCounts({ ...turn, usage: turn.usage ?? undefined }, prompt, text, toolCalls)!;
}

function usage(input: number, output: number) {
  return {
    input_tokens: input,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    output_tokens: output,
    service_tier: 'standard',
  };
}

function streamEvents(turn: FakeTurn, id: string, model: string, prompt: object, toolCalls: ToolCall[]): string[] {
  const pieces = textPieces(turn);
  const tokens = counts(turn, prompt, pieces.join(''), toolCalls);
  const events: string[] = [
    sse(
      {
        type: 'message_start',
        message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: usage(tokens.input, 1) },
      },
      'message_start',
    ),
  ];
  let index = 0;
  let pinged = false;
  const start = (block: object) => {
    events.push(sse({ type: 'content_block_start', index, content_block: block }, 'content_block_start'));
    // Anthropic pings once, after the first block starts.
    if (!pinged) events.push(sse({ type: 'ping' }, 'ping'));
    pinged = true;
  };
  const delta = (value: object) => events.push(sse({ type: 'content_block_delta', index, delta: value }, 'content_block_delta'));
  const stop = () => events.push(sse({ type: 'content_block_stop', index: index++ }, 'content_block_stop'));
  if (pieces.length > 0) {
    start({ type: 'text', text: '' });
    for (const piece of pieces) delta({ type: 'text_delta', text: piece });
    stop();
  }
  for (const call of toolCalls) {
    start({ type: 'tool_use', id: call.id, name: call.name, input: {} });
    delta({ type: 'input_json_delta', partial_json: '' });
    for (const piece of splitArguments(call.arguments)) delta({ type: 'input_json_delta', partial_json: piece });
    stop();
  }
  if (!pinged) events.push(sse({ type: 'ping' }, 'ping'));
  events.push(
    sse(
      {
        type: 'message_delta',
        delta: { stop_reason: stopReason(turn), stop_sequence: null },
        usage: { input_tokens: tokens.input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: tokens.output },
      },
      'message_delta',
    ),
  );
  events.push(sse({ type: 'message_stop' }, 'message_stop'));
  return events;
}

function errorEvent(error: StreamError): string {
  const type = error.type ?? errorType(error.status);
  return sse({ type: 'error', error: { type, message: error.message ?? ERROR_MESSAGES[type] ?? 'Error' }, request_id: requestId() }, 'error');
}

function message(turn: FakeTurn, id: string, model: string, prompt: object, toolCalls: ToolCall[]): object {
  const text = wholeText(turn);
  const tokens = counts(turn, prompt, text, toolCalls);
  return {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content: [
      ...(text !== '' ? [{ type: 'text', text }] : []),
      ...toolCalls.map((call) => ({ type: 'tool_use', id: call.id, name: call.name, input: argumentsObject(call) })),
    ],
    stop_reason: stopReason(turn),
    stop_sequence: null,
    usage: usage(tokens.input, tokens.output),
  };
}
