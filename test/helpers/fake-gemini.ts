/**
 * The fake model's Google Gemini API (`POST /gemini/v1beta/models/{model}:generateContent` and
 * `:streamGenerateContent`, `?alt=sse` for SSE, else a streamed JSON array; `/gemini/v1` too):
 * GenerateContentResponse chunks, function calls as whole `functionCall` parts, usageMetadata, and
 * Google's error bodies `{"error":{code,message,status,details?}}`.
 */
import type { ServerResponse } from 'node:http';
import { embed, type FakeTurn } from './fake-model.js';
import {
  argumentsObject,
  base62,
  finishReasonOf,
  header,
  isObject,
  playTurn,
  sendJson,
  textPieces,
  tokenCounts,
  toolCallsOf,
  wholeText,
  type Frame,
  type ProtocolRequest,
  type StreamError,
  type ToolCall,
} from './fake-wire.js';

const STATUSES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'NOT_IMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

const MESSAGES: Record<string, string> = {
  INVALID_ARGUMENT: 'Request contains an invalid argument.',
  PERMISSION_DENIED: 'The caller does not have permission',
  NOT_FOUND: 'Requested entity was not found.',
  RESOURCE_EXHAUSTED:
    'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.',
  INTERNAL: 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting',
  UNAVAILABLE: 'The model is overloaded. Please try again later.',
  DEADLINE_EXCEEDED: 'The request timed out. Please try again.',
};

function statusName(status: number): string {
  return STATUSES[status] ?? (status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT');
}

/** Google's error object; a `retryAfter` (seconds) becomes a RetryInfo detail, as Gemini reports retry delays. */
function errorObject(status: number, message?: string, retryAfter?: string, name = statusName(status)) {
  const seconds = retryAfter !== undefined ? Number(retryAfter) : NaN;
  return {
    code: status,
    message: message ?? MESSAGES[name] ?? 'Error',
    status: name,
    ...(Number.isFinite(seconds) ? { details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${seconds}s` }] } : {}),
  };
}

export function sendGeminiError(response: ServerResponse, status: number, message?: string, retryAfter?: string): void {
  sendJson(response, status, { error: errorObject(status, message, retryAfter) }, {}, 'application/json; charset=UTF-8');
}

const PATH = /^\/gemini\/(v1beta|v1|v1alpha)\/models\/([^/:]+):(generateContent|streamGenerateContent)$/;

const EMBED_PATH = /^\/gemini\/(v1beta|v1)\/models\/([^/:]+):(embedContent|batchEmbedContents)$/;

/** Gemini's embeddings: `:embedContent` → `{embedding: {values}}`, `:batchEmbedContents` → `{embeddings: [{values}]}`. */
function embeddings(response: ServerResponse, body: any, batch: boolean): void {
  const textOf = (content: any) => (Array.isArray(content?.parts) ? content.parts.map((part: any) => part?.text ?? '').join('') : '');
  const requests: any[] = batch ? (Array.isArray(body?.requests) ? body.requests : []) : [body];
  if (requests.length === 0 || requests.some((item) => !isObject(item?.content))) return sendGeminiError(response, 400, 'Invalid value at content: a Content with parts is required.');
  const vectors = requests.map((item) => ({ values: Array.from(embed(textOf(item.content), Number(item.outputDimensionality) || 768)) }));
  sendJson(response, 200, batch ? { embeddings: vectors } : { embedding: vectors[0] }, {}, 'application/json; charset=UTF-8');
}

export function handleGemini({ request, response, url, recorded, invalidJson, takeTurn }: ProtocolRequest): void {
  const fail = (message: string) => sendGeminiError(response, 400, message);
  const embedding = EMBED_PATH.exec(url.pathname);
  if (request.method === 'POST' && embedding) {
    if (!header(request, 'x-goog-api-key') && !url.searchParams.get('key')) return sendGeminiError(response, 403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.");
    if (invalidJson) return fail('Invalid JSON payload received. Unexpected token.');
    return embeddings(response, recorded.body, embedding[3] === 'batchEmbedContents');
  }
  const match = PATH.exec(url.pathname);
  if (request.method !== 'POST' || !match) {
    return sendGeminiError(response, 404, `Method not found: ${request.method} ${url.pathname.replace(/^\/gemini/, '')}`);
  }
  if (!header(request, 'x-goog-api-key') && !url.searchParams.get('key')) {
    return sendGeminiError(
      response,
      403,
      "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    );
  }
  if (invalidJson) return fail('Invalid JSON payload received. Unexpected token.');
  const body = recorded.body;
  if (!isObject(body)) return fail('Invalid JSON payload received. Expected an object.');
  const problem = validate(body);
  if (problem) return fail(problem);

  const turn = takeTurn();
  const model = decodeURIComponent(match[2]!);
  const streaming = match[3] === 'streamGenerateContent';
  const sseStream = url.searchParams.get('alt') === 'sse';
  const responseId = base62(22);
  const toolCalls = toolCallsOf(turn, () => '');
  const prompt = { contents: body.contents, systemInstruction: body.systemInstruction, tools: body.tools };
  playTurn(recorded, response, turn, {
    error: (status, message, retryAfter) => sendGeminiError(response, status, message, retryAfter),
    streamErrorStatus: 503,
    stream: streaming
      ? {
          headers: sseStream
            ? { 'content-type': 'text/event-stream', 'x-content-type-options': 'nosniff', vary: 'Origin, X-Origin, Referer' }
            : { 'content-type': 'application/json; charset=UTF-8', vary: 'Origin, X-Origin, Referer' },
          frames: () => frames(streamChunks(turn, model, responseId, prompt, toolCalls), sseStream),
          errorFrame: (error) => errorFrame(error, sseStream),
        }
      : undefined,
    whole: () => sendJson(response, 200, wholeResponse(turn, model, responseId, prompt, toolCalls), {}, 'application/json; charset=UTF-8'),
  });
}

/** Gemini's checks on the conversation a client sends: roles, and function call / response turns. */
function validate(body: Record<string, any>): string | undefined {
  if (!Array.isArray(body.contents) || body.contents.length === 0) return '* GenerateContentRequest.contents: contents is not specified\n';
  const contents: any[] = body.contents;
  const parts = (content: any, key: string): any[] => (Array.isArray(content?.parts) ? content.parts.filter((part: any) => isObject(part) && key in part) : []);
  for (const [index, content] of contents.entries()) {
    if (!isObject(content)) return `Invalid value at 'contents[${index}]' (type.googleapis.com/google.ai.generativelanguage.v1beta.Content)`;
    if (content.role !== undefined && content.role !== 'user' && content.role !== 'model') return 'Please use a valid role: user, model.';
    if (!Array.isArray(content.parts) || content.parts.length === 0) return `* GenerateContentRequest.contents[${index}].parts: contents.parts must not be empty.\n`;
  }
  for (const [index, content] of contents.entries()) {
    const previous = contents[index - 1];
    const calls = parts(content, 'functionCall');
    if (calls.length > 0 && index > 0) {
      const afterUser = (previous.role ?? 'user') === 'user' && parts(previous, 'functionCall').length === 0;
      if (!afterUser && parts(previous, 'functionResponse').length === 0) {
        return 'Please ensure that function call turn comes immediately after a user turn or after a function response turn.';
      }
    }
    const responses = parts(content, 'functionResponse');
    if (responses.length > 0) {
      const previousCalls = index > 0 ? parts(previous, 'functionCall') : [];
      if (previousCalls.length === 0) return 'Please ensure that function response turn comes immediately after a function call turn.';
      if (previousCalls.length !== responses.length) {
        return 'Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.';
      }
    }
  }
  return undefined;
}

function finishReason(turn: FakeTurn): string {
  const reason = finishReasonOf(turn);
  return reason === 'length' ? 'MAX_TOKENS' : reason === 'content_filter' ? 'SAFETY' : 'STOP';
}

function usageMetadata(input: number, output: number | undefined) {
  return {
    promptTokenCount: input,
    ...(output !== undefined ? { candidatesTokenCount: output } : {}),
    totalTokenCount: input + (output ?? 0),
    promptTokensDetails: [{ modality: 'TEXT', tokenCount: input }],
  };
}

function functionCallParts(toolCalls: ToolCall[]) {
  return toolCalls.map((call) => ({ functionCall: { name: call.name, args: argumentsObject(call) } }));
}

/** A text chunk per piece; the function calls (whole, parallel ones side by side) and the finish reason in the last chunk. */
function streamChunks(turn: FakeTurn, model: string, responseId: string, prompt: object, toolCalls: ToolCall[]): object[] {
  const pieces = textPieces(turn);
  const tokens = tokenCounts(turn, prompt, pieces.join(''), toolCalls);
  const calls = functionCallParts(toolCalls);
  const partsList: object[][] = pieces.map((text) => [{ text }]);
  if (calls.length > 0) partsList.push(calls);
  if (partsList.length === 0) partsList.push([{ text: '' }]);
  return partsList.map((parts, index) => {
    const last = index === partsList.length - 1;
    return {
      candidates: [{ content: { parts, role: 'model' }, ...(last ? { finishReason: finishReason(turn) } : {}), index: 0 }],
      ...(tokens ? { usageMetadata: usageMetadata(tokens.input, last ? tokens.output : undefined) } : {}),
      modelVersion: model,
      responseId,
    };
  });
}

function frames(chunks: object[], sseStream: boolean): Frame[] {
  if (sseStream) return chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\r\n\r\n`);
  // Without alt=sse: one JSON array, written element by element.
  return [...chunks.map((chunk, index) => `${index === 0 ? '[' : ',\r\n'}${JSON.stringify(chunk)}`), ']'];
}

function errorFrame(error: StreamError, sseStream: boolean): Frame {
  const body = { error: errorObject(error.status, error.message, undefined, error.type) };
  return sseStream ? `data: ${JSON.stringify(body)}\r\n\r\n` : `${error.afterEvents <= 0 ? '[' : ',\r\n'}${JSON.stringify(body)}]`;
}

function wholeResponse(turn: FakeTurn, model: string, responseId: string, prompt: object, toolCalls: ToolCall[]): object {
  const text = wholeText(turn);
  const tokens = tokenCounts(turn, prompt, text, toolCalls);
  const parts = [...(text !== '' ? [{ text }] : []), ...functionCallParts(toolCalls)];
  return {
    candidates: [{ content: { parts: parts.length > 0 ? parts : [{ text: '' }], role: 'model' }, finishReason: finishReason(turn), index: 0 }],
    ...(tokens ? { usageMetadata: usageMetadata(tokens.input, tokens.output) } : {}),
    modelVersion: model,
    responseId,
  };
}
