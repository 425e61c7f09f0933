/**
 * The fake model's AWS Bedrock Converse API (`POST /bedrock/model/{modelId}/converse` and
 * `/converse-stream`): the Converse JSON, or binary AWS event-stream frames (messageStart,
 * contentBlockStart, contentBlockDelta, contentBlockStop, messageStop, metadata; an exception frame
 * mid-stream), and Bedrock's errors (`x-amzn-errortype` header, `{"message"}` body). The SigV4
 * signature is required but not checked; a Bedrock API key (`Authorization: Bearer`) is accepted too.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';
import type { FakeTurn } from './fake-model.js';
import {
  argumentsObject,
  finishReasonOf,
  header,
  hexId,
  isObject,
  playTurn,
  sendJson,
  splitArguments,
  textPieces,
  tokenCounts,
  toolCallsOf,
  wholeText,
  type ProtocolRequest,
  type StreamError,
  type ToolCall,
} from './fake-wire.js';

const codec = new EventStreamCodec(toUtf8, fromUtf8);

const EXCEPTIONS: Record<number, { name: string; message: string }> = {
  400: { name: 'ValidationException', message: 'Malformed input request, please reformat your input and try again.' },
  403: { name: 'AccessDeniedException', message: "You don't have access to the model with the specified model ID." },
  404: { name: 'ResourceNotFoundException', message: 'The requested resource could not be found.' },
  408: { name: 'ModelTimeoutException', message: 'The request took too long to process.' },
  424: { name: 'ModelErrorException', message: 'The model returned an error.' },
  429: { name: 'ThrottlingException', message: 'Too many requests, please wait before trying again.' },
  500: { name: 'InternalServerException', message: 'The server encountered an internal error.' },
  503: { name: 'ServiceUnavailableException', message: 'Bedrock is unable to process your request.' },
};

function exception(status: number) {
  return EXCEPTIONS[status] ?? (status >= 500 ? EXCEPTIONS[500]! : EXCEPTIONS[400]!);
}

function requestId(): string {
  const hex = hexId(32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function sendBedrockError(response: ServerResponse, status: number, message?: string, retryAfter?: string, name = exception(status).name): void {
  sendJson(
    response,
    status,
    { message: message ?? EXCEPTIONS[status]?.message ?? exception(status).message },
    {
      'x-amzn-requestid': requestId(),
      'x-amzn-errortype': `${name}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
      ...(retryAfter !== undefined ? { 'retry-after': retryAfter } : {}),
    },
  );
}

const PATH = /^\/bedrock\/model\/([^/]+)\/(converse|converse-stream)$/;

export function handleBedrock({ request, response, url, recorded, invalidJson, takeTurn }: ProtocolRequest): void {
  const match = PATH.exec(url.pathname);
  if (request.method !== 'POST' || !match) {
    return sendBedrockError(response, 404, `Unknown operation: ${request.method} ${url.pathname.replace(/^\/bedrock/, '')}`, undefined, 'UnknownOperationException');
  }
  const authorization = header(request, 'authorization') ?? '';
  if (!authorization.startsWith('AWS4-HMAC-SHA256 ') && !/^Bearer \S+/.test(authorization)) {
    return sendBedrockError(response, 403, 'Missing Authentication Token', undefined, 'MissingAuthenticationTokenException');
  }
  if (invalidJson || !isObject(recorded.body)) return sendBedrockError(response, 400, 'Malformed input request, please reformat your input and try again.');
  const body = recorded.body;
  const problem = validate(body);
  if (problem) return sendBedrockError(response, 400, problem);

  const turn = takeTurn();
  const started = Date.now();
  const toolCalls = toolCallsOf(turn, () => `tooluse_${randomBytes(16).toString('base64url').slice(0, 22)}`);
  const prompt = { system: body.system, messages: body.messages, toolConfig: body.toolConfig };
  playTurn(recorded, response, turn, {
    error: (status, message, retryAfter) => sendBedrockError(response, status, message, retryAfter),
    streamErrorStatus: 503,
    stream:
      match[2] === 'converse-stream'
        ? {
            headers: { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': requestId() },
            frames: () => streamFrames(turn, prompt, toolCalls, started),
            errorFrame: (error) => exceptionFrame(error),
          }
        : undefined,
    whole: () => sendJson(response, 200, converse(turn, prompt, toolCalls, started), { 'x-amzn-requestid': requestId() }),
  });
}

/** Bedrock's conversation checks: user first, roles alternate, every toolUse answered by a toolResult in the next turn. */
function validate(body: Record<string, any>): string | undefined {
  if (!Array.isArray(body.messages)) return "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null";
  const messages: any[] = body.messages;
  if (messages.length === 0 || messages[0]?.role !== 'user') {
    return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
  }
  const blocks = (message: any, key: string): any[] => (Array.isArray(message?.content) ? message.content.filter((block: any) => isObject(block) && key in block) : []);
  for (const [index, message] of messages.entries()) {
    if (message?.role !== 'user' && message?.role !== 'assistant') return `1 validation error detected: Value '${String(message?.role)}' at 'messages.${index + 1}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]`;
    if (index > 0 && messages[index - 1]?.role === message.role) {
      return 'A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.';
    }
    const results = blocks(message, 'toolResult');
    if (results.length > 0) {
      const uses = index > 0 ? blocks(messages[index - 1], 'toolUse') : [];
      if (results.length > uses.length) return `The number of toolResult blocks at messages.${index}.content exceeds the number of toolUse blocks of previous turn.`;
    }
    const uses = message.role === 'assistant' ? blocks(message, 'toolUse') : [];
    if (uses.length > 0 && index + 1 < messages.length) {
      const answered = new Set(blocks(messages[index + 1], 'toolResult').map((block) => block.toolResult?.toolUseId));
      const missing = uses.map((block) => String(block.toolUse?.toolUseId)).filter((id) => !answered.has(id));
      if (missing.length > 0) return `Expected toolResult blocks at messages.${index + 1}.content for the following Ids: ${missing.join(', ')}`;
    }
  }
  return undefined;
}

function stopReason(turn: FakeTurn): string {
  const reason = finishReasonOf(turn);
  return reason === 'length' ? 'max_tokens' : reason === 'tool_calls' ? 'tool_use' : reason === 'content_filter' ? 'content_filtered' : 'end_turn';
}

/** Bedrock pads each event's JSON with a `p` field of varying length (it hides the payload size). */
function padding(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  return alphabet.slice(0, 1 + (randomBytes(1)[0]! % alphabet.length));
}

function eventFrame(type: string, payload: object): Uint8Array {
  return codec.encode({
    headers: {
      ':event-type': { type: 'string', value: type },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'event' },
    },
    body: fromUtf8(JSON.stringify({ ...payload, p: padding() })),
  });
}

/** A mid-stream exception: `:exception-type` is the stream member's name (`throttlingException`, …). */
function exceptionFrame(error: StreamError): Uint8Array {
  const known = exception(error.status);
  const type = error.type ?? `${known.name.charAt(0).toLowerCase()}${known.name.slice(1)}`;
  return codec.encode({
    headers: {
      ':exception-type': { type: 'string', value: type },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'exception' },
    },
    body: fromUtf8(JSON.stringify({ message: error.message ?? known.message })),
  });
}

function usage(input: number, output: number) {
  return { inputTokens: input, outputTokens: output, totalTokens: input + output };
}

function streamFrames(turn: FakeTurn, prompt: object, toolCalls: ToolCall[], started: number): Uint8Array[] {
  const pieces = textPieces(turn);
  const frames = [eventFrame('messageStart', { role: 'assistant' })];
  let index = 0;
  if (pieces.length > 0) {
    // Text blocks have no contentBlockStart: their first delta opens them.
    for (const text of pieces) frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: index, delta: { text } }));
    frames.push(eventFrame('contentBlockStop', { contentBlockIndex: index++ }));
  }
  for (const call of toolCalls) {
    frames.push(eventFrame('contentBlockStart', { contentBlockIndex: index, start: { toolUse: { toolUseId: call.id, name: call.name } } }));
    for (const input of splitArguments(call.arguments)) frames.push(eventFrame('contentBlockDelta', { contentBlockIndex: index, delta: { toolUse: { input } } }));
    frames.push(eventFrame('contentBlockStop', { contentBlockIndex: index++ }));
  }
  frames.push(eventFrame('messageStop', { stopReason: stopReason(turn) }));
  const tokens = tokenCounts(turn, prompt, pieces.join(''), toolCalls);
  if (tokens) frames.push(eventFrame('metadata', { usage: usage(tokens.input, tokens.output), metrics: { latencyMs: Math.max(1, Date.now() - started) } }));
  return frames;
}

function converse(turn: FakeTurn, prompt: object, toolCalls: ToolCall[], started: number): object {
  const text = wholeText(turn);
  const tokens = tokenCounts(turn, prompt, text, toolCalls);
  return {
    output: {
      message: {
        role: 'assistant',
        content: [
          ...(text !== '' ? [{ text }] : []),
          ...toolCalls.map((call) => ({ toolUse: { toolUseId: call.id, name: call.name, input: argumentsObject(call) } })),
        ],
      },
    },
    stopReason: stopReason(turn),
    usage: tokens ? usage(tokens.input, tokens.output) : usage(0, 0),
    metrics: { latencyMs: Math.max(1, Date.now() - started) },
  };
}
