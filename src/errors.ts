import { truncate } from './text.js';

/** How much of a client's own input an error message repeats. */
const MAX_QUOTED_CHARS = 80;
/** No message, whatever it quotes, grows past this. */
const MAX_MESSAGE_CHARS = 1_000;

/** A piece of client input as an error message repeats it: bounded. */
export const quote = (value: unknown) => truncate(String(value), MAX_QUOTED_CHARS);

/** A client-facing error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(truncate(message, MAX_MESSAGE_CHARS));
    this.name = 'ApiError';
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', param, code);

export const notFound = (kind: string, id: string) =>
  new ApiError(404, `No ${kind} found with id '${quote(id)}'.`, 'invalid_request_error');

/** 404 for an object under a thread: names the thread when it is the thread that is missing. */
export async function notFoundInThread(
  threads: { getThread(id: string): Promise<unknown> },
  threadId: string,
  kind: string,
  id: string,
): Promise<ApiError> {
  return (await threads.getThread(threadId)) ? notFound(kind, id) : notFound('thread', threadId);
}

/** A request body naming a file this server does not have. */
export const fileNotFound = (id: string, param: string) =>
  new ApiError(400, `No file found with id '${quote(id)}'.`, 'invalid_request_error', param);

export const invalidUrl = (method: string, url: string, status = 404, detail = '') =>
  new ApiError(status, `Invalid URL (${quote(method)} ${quote(url)})${detail}`, 'invalid_request_error');

export const missingApiKey = () =>
  new ApiError(
    401,
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    'invalid_request_error',
  );

export const invalidApiKey = () =>
  new ApiError(401, 'Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key');

export const bodyTooLarge = (limitBytes: number) =>
  new ApiError(
    413,
    `Request body too large. The maximum size is ${limitBytes} bytes.`,
    'invalid_request_error',
    null,
    'request_too_large',
  );

export const fileTooLarge = (limitBytes: number) =>
  new ApiError(
    413,
    `File too large. The maximum size is ${Math.round(limitBytes / (1024 * 1024))} MB (assistd_settings.max_upload_size_mb).`,
    'invalid_request_error',
    'file',
    'file_too_large',
  );

export const invalidJson = () =>
  new ApiError(
    400,
    "We could not parse the JSON body of your request. The API expects a JSON payload, but what was sent was not valid JSON.",
    'invalid_request_error',
  );

export const serverError = (requestId: string) =>
  new ApiError(
    500,
    `The server had an error while processing your request. Include the request ID ${quote(requestId)} if you report it.`,
    'server_error',
  );

/** Errors written for a connection whose request never reached the routes (see http/connection-errors.ts). */
export const requestTimeout = (part: 'headers' | 'body', seconds: number) =>
  new ApiError(
    408,
    part === 'headers'
      ? `The request headers did not arrive within ${seconds} second${seconds === 1 ? '' : 's'}.`
      : `The request body did not arrive within ${seconds} second${seconds === 1 ? '' : 's'} of its headers.`,
    'invalid_request_error',
    null,
    'request_timeout',
  );

export const uploadStalled = (seconds: number) =>
  new ApiError(408, `The upload stalled: no bytes arrived for ${seconds} second${seconds === 1 ? '' : 's'}.`, 'invalid_request_error', null, 'request_timeout');

export const headersTooLarge = (limitBytes: number) =>
  new ApiError(
    431,
    `Request header fields too large: the request line and headers must fit in ${limitBytes} bytes.`,
    'invalid_request_error',
  );

export const malformedHttp = (reason: string) =>
  new ApiError(400, `The request is not valid HTTP/1.1: ${reason}.`, 'invalid_request_error');

export const missingHost = () =>
  new ApiError(400, 'The request has no Host header, which HTTP/1.1 requires.', 'invalid_request_error');

export const expectationFailed = () =>
  new ApiError(417, "Expectation failed: the only Expect header this server honours is '100-continue'.", 'invalid_request_error');

/** Passthrough mode: the upstream Assistants API refused the connection or broke it before answering. */
export const upstreamUnreachable = (reason: string) =>
  new ApiError(502, `The upstream Assistants API could not be reached (${quote(reason)}). Retry the request in a moment.`, 'server_error', null, 'upstream_unreachable');

/** Passthrough mode: the upstream said nothing for `seconds` (assistant_settings.litellm_params.timeout). */
export const upstreamTimeout = (seconds: number) =>
  new ApiError(504, `The upstream Assistants API did not answer within ${seconds} second${seconds === 1 ? '' : 's'}.`, 'server_error', null, 'upstream_timeout');

/** The database is out of reach for now (restarting, connections cut): try again shortly. */
export const databaseUnavailable = () =>
  new ApiError(503, 'The server cannot reach its database right now. Retry the request in a moment.', 'server_error', null, 'database_unavailable', { 'retry-after': '1' });

// Connection failures (node), and PostgreSQL's own for a server going away: 08 connection
// exceptions, 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now), 53300 (too many connections).
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300']);
const CONNECTION_MESSAGES = /Connection terminated|connection timeout|Client has encountered a connection error|the database system is (starting up|shutting down)/i;

/** Whether `error` says the database could not be reached, rather than that the query was wrong. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
  return CONNECTION_MESSAGES.test(error.message);
}

export const shuttingDown = () =>
  new ApiError(503, 'The server is shutting down. Retry the request in a moment.', 'server_error');
