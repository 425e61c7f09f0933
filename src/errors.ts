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
    super(message);
    this.name = 'ApiError';
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, 'invalid_request_error', param, code);

export const notFound = (kind: string, id: string) =>
  new ApiError(404, `No ${kind} found with id '${id}'.`, 'invalid_request_error');

/** 404 for an object under a thread: names the thread when it is the thread that is missing. */
export async function notFoundInThread(
  threads: { getThread(id: string): Promise<unknown> },
  threadId: string,
  kind: string,
  id: string,
): Promise<ApiError> {
  return (await threads.getThread(threadId)) ? notFound(kind, id) : notFound('thread', threadId);
}

export const invalidUrl = (method: string, url: string) =>
  new ApiError(404, `Invalid URL (${method} ${url})`, 'invalid_request_error');

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

export const invalidJson = () =>
  new ApiError(
    400,
    "We could not parse the JSON body of your request. The API expects a JSON payload, but what was sent was not valid JSON.",
    'invalid_request_error',
  );

export const serverError = (requestId: string) =>
  new ApiError(
    500,
    `The server had an error while processing your request. Include the request ID ${requestId} if you report it.`,
    'server_error',
  );
