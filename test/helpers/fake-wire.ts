/**
 * What every protocol of the fake model shares: playing a scripted turn (hang, first-byte delay,
 * an error status, a stream with delays / a break / a mid-stream error, or a whole answer), the
 * stream writer, how text and tool-call arguments are split into pieces, token estimates, ids.
 * Each protocol (fake-model.ts for OpenAI, fake-anthropic.ts, fake-gemini.ts, fake-mistral.ts,
 * fake-bedrock.ts) only says how a turn looks on its wire.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FakeTurn, RecordedRequest } from './fake-model.js';

/** One unit of a stream: an SSE event (text) or an event-stream frame (bytes). */
export type Frame = string | Uint8Array;

/** A request routed to one protocol. */
export interface ProtocolRequest {
  request: IncomingMessage;
  response: ServerResponse;
  url: URL;
  recorded: RecordedRequest;
  /** The body was not JSON (`recorded.body` is null). */
  invalidJson: boolean;
  /** Takes the turn that answers this request (handler, then queue, then the default turn). */
  takeTurn(): FakeTurn;
}

export interface StreamError {
  afterEvents: number;
  status: number;
  type: string | undefined;
  message: string | undefined;
}

/** How one protocol answers a turn. */
export interface TurnPlan {
  /** An HTTP error in the protocol's shape. `message` undefined: the provider's usual text. */
  error(status: number, message: string | undefined, retryAfter: string | undefined): void;
  /** Status of a `streamError` without one (each provider's "overloaded"). */
  streamErrorStatus: number;
  stream?: {
    headers: Record<string, string>;
    frames(): Frame[];
    /** The event that reports a mid-stream error; the stream ends after it. */
    errorFrame(error: StreamError): Frame;
  };
  /** Sends the whole (non-streamed) answer. */
  whole?(): void;
}

/** Plays `turn` on `response` in the protocol's shape given by `plan` (stream when `plan.stream`). */
export function playTurn(recorded: RecordedRequest, response: ServerResponse, turn: FakeTurn, plan: TurnPlan): void {
  if (turn.hang) return; // answered by close(), or by the client going away
  const respond = () => {
    if (response.destroyed) return;
    try {
      if (turn.status !== undefined && (turn.status < 200 || turn.status >= 300)) {
        return plan.error(turn.status, turn.errorMessage, turn.retryAfter);
      }
      const streamError = turn.streamError
        ? {
            afterEvents: turn.streamError.afterEvents ?? 1,
            status: turn.streamError.status ?? plan.streamErrorStatus,
            type: turn.streamError.type,
            message: turn.streamError.message,
          }
        : undefined;
      if (plan.stream) {
        let frames = plan.stream.frames();
        if (streamError) frames = [...frames.slice(0, Math.max(0, streamError.afterEvents)), plan.stream.errorFrame(streamError)];
        return writeStream(recorded, response, plan.stream.headers, frames, turn.chunkDelayMs ?? 0, turn.breakAfterChunks);
      }
      if (turn.breakAfterChunks !== undefined) {
        response.socket?.destroy();
        return;
      }
      // A whole answer has no stream to break in: the same failure comes as an error status.
      if (streamError) return plan.error(streamError.status, streamError.message, undefined);
      plan.whole?.();
    } catch (error) {
      fakeFailure(response, error);
    }
  };
  if (turn.firstByteDelayMs && turn.firstByteDelayMs > 0) {
    const timer = setTimeout(respond, turn.firstByteDelayMs);
    response.once('close', () => clearTimeout(timer));
  } else {
    respond();
  }
}

/** A turn the protocol cannot express (e.g. tool arguments that are not JSON where the wire wants an object). */
export class FakeScriptError extends Error {}

export function fakeFailure(response: ServerResponse, error: unknown): void {
  if (response.headersSent || response.destroyed) {
    response.destroy();
    return;
  }
  sendJson(response, 500, { fake_model_failure: error instanceof Error ? error.message : String(error) });
}

export function writeStream(
  recorded: RecordedRequest,
  response: ServerResponse,
  headers: Record<string, string>,
  events: Frame[],
  delayMs: number,
  breakAfter: number | undefined,
): void {
  response.writeHead(200, headers);
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

// ------------------------------------------------------------------ what a turn says

export type ToolCall = { name: string; arguments: string; id: string };

/** The turn's text pieces as streamed. */
export function textPieces(turn: FakeTurn): string[] {
  return turn.chunks ?? splitWords(turn.text ?? '');
}

export function wholeText(turn: FakeTurn): string {
  return turn.chunks ? turn.chunks.join('') : (turn.text ?? '');
}

export function toolCallsOf(turn: FakeTurn, newId: () => string): ToolCall[] {
  return (turn.toolCalls ?? []).map((call) => ({ ...call, id: call.id ?? newId() }));
}

/** OpenAI's finish reason for the turn; each protocol maps it to its own stop reason. */
export function finishReasonOf(turn: FakeTurn): NonNullable<FakeTurn['finishReason']> {
  return turn.finishReason ?? (turn.toolCalls && turn.toolCalls.length > 0 ? 'tool_calls' : 'stop');
}

/** Token counts: the scripted ones, else estimated from lengths. `null` when the turn says no usage. */
export function tokenCounts(turn: FakeTurn, prompt: unknown, text: string, toolCalls: { name: string; arguments: string }[]) {
  if (turn.usage === null) return null;
  const input = turn.usage?.prompt_tokens ?? Math.max(1, Math.ceil(JSON.stringify(prompt ?? []).length / 4));
  const completionLength = text.length + toolCalls.reduce((sum, call) => sum + call.name.length + call.arguments.length, 0);
  const output = turn.usage?.completion_tokens ?? Math.max(1, Math.ceil(completionLength / 4));
  return { input, output };
}

/** Tool arguments as a JSON object, for wires that carry them parsed (Gemini, whole Anthropic / Bedrock answers). */
export function argumentsObject(call: { name: string; arguments: string }): Record<string, unknown> {
  if (call.arguments.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(call.arguments);
  } catch {
    throw new FakeScriptError(`tool call ${call.name}: arguments ${JSON.stringify(call.arguments)} are not JSON, and this wire carries them as an object`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new FakeScriptError(`tool call ${call.name}: arguments ${JSON.stringify(call.arguments)} are not a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** "Hello there, world" → ["Hello", " there,", " world"]: joined, they give the text back. */
export function splitWords(text: string): string[] {
  return text.match(/\s*\S+|\s+/g) ?? [];
}

export function splitArguments(text: string): string[] {
  if (text === '') return [];
  const size = Math.max(1, Math.ceil(text.length / 3));
  const pieces: string[] = [];
  for (let start = 0; start < text.length; start += size) pieces.push(text.slice(start, start + size));
  return pieces;
}

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export function base62(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let index = 0; index < length; index += 1) out += BASE62[bytes[index]! % 62];
  return out;
}

export function hexId(length: number): string {
  return randomBytes(Math.ceil(length / 2)).toString('hex').slice(0, length);
}

// ------------------------------------------------------------------ plumbing

export function sse(data: object, event?: string): string {
  return `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: object,
  extraHeaders: Record<string, string> = {},
  contentType = 'application/json',
): void {
  if (response.destroyed) return;
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  response.end(text);
}

export function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function isObject(value: unknown): value is Record<string, any> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
