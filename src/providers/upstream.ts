/** What every provider client does with an upstream's answer: when to retry, and how to name a failure. */
import http from 'node:http';
import https from 'node:https';

/** The longest delay a Node timer takes (about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

/**
 * `retry-after-ms` (OpenAI's) first, then `Retry-After` in seconds or as an HTTP date; `header`
 * reads one response header by its lower-case name.
 */
export function retryAfterMs(header: (name: string) => string | null | undefined): number | null {
  const milliseconds = Number(header('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(milliseconds) && milliseconds >= 0) return Math.round(milliseconds);
  const value = header('retry-after')?.trim();
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** An error's message with its cause's (and the cause's code), as fetch failures hide the reason there. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause : null;
  const code = cause && 'code' in cause && typeof cause.code === 'string' ? cause.code : null;
  if (cause && cause.message && cause.message !== error.message) {
    return `${error.message} (${code && !cause.message.includes(code) ? `${code}: ` : ''}${cause.message})`;
  }
  return error.message;
}

/** What the clients read of an upstream's answer, whether fetch or node:http carried it. */
export interface UpstreamResponse {
  status: number;
  statusText: string;
  ok: boolean;
  /** One response header by name (null when absent). */
  header(name: string): string | null;
  /** The body, chunk by chunk. */
  read(): Promise<{ done: true; value?: undefined } | { done: false; value: Uint8Array }>;
}

export type UpstreamRequest = { headers: Record<string, string>; body: string; signal?: AbortSignal | undefined };

/** Sends one POST and resolves with its response once the headers are in. */
export type Transport = (url: string, request: UpstreamRequest) => Promise<UpstreamResponse>;

const keepAlive = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

/**
 * node:http(s) with keep-alive connections. A streamed model call through it costs about a third of
 * what fetch costs in CPU (undici's web streams), and the run engine makes one on every turn.
 * Aborting the signal destroys the request, and the body's next read throws.
 */
export const nodeTransport: Transport = (url, { headers, body, signal }) =>
  new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const request = (secure ? https : http).request(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      agent: secure ? keepAlive.https : keepAlive.http,
    });
    // An abort destroys the request (and with it the response); every stream it reaches has a
    // listener here, so none of its errors goes unheard. (Node's own `signal` option does not.)
    // A response already whole has given its socket back to the pool: nothing is left to abort.
    let received: http.IncomingMessage | undefined;
    const onAbort = () => {
      if (!received?.complete) request.destroy(new Error('the request was aborted', { cause: signal?.reason }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    request.on('close', () => signal?.removeEventListener('abort', onAbort));
    // Errors after the headers (a cut connection, an abort) reach the body's reader instead.
    request.on('error', reject);
    request.on('response', (response) => {
      received = response;
      response.on('error', () => {});
      const chunks = response[Symbol.asyncIterator]();
      const status = response.statusCode ?? 0;
      resolve({
        status,
        statusText: response.statusMessage ?? '',
        ok: status >= 200 && status < 300,
        header(name) {
          const value = response.headers[name.toLowerCase()];
          return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
        },
        async read() {
          const next = await chunks.next();
          return next.done ? { done: true } : { done: false, value: next.value as Buffer };
        },
      });
    });
    request.setNoDelay(true);
    request.end(body);
  });

/** A fetch (a test's, or one configured in its place) seen as a transport. */
export function fetchTransport(fetchImpl: typeof fetch): Transport {
  return async (url, { headers, body, signal }) => {
    const response = await fetchImpl(url, { method: 'POST', headers, body, signal });
    const reader = response.body?.getReader();
    return {
      status: response.status,
      statusText: response.statusText,
      ok: response.ok,
      header: (name) => response.headers.get(name),
      read: async () => (reader ? ((await reader.read()) as Awaited<ReturnType<UpstreamResponse['read']>>) : { done: true }),
    };
  };
}

/** The whole body as text, or its first `limit` bytes and a little more (the caller then aborts the rest). */
export async function readText(response: UpstreamResponse, limit = Number.POSITIVE_INFINITY, read = () => response.read()): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for (;;) {
    const { done, value } = await read();
    if (done) return text + decoder.decode();
    bytes += value.byteLength;
    text += decoder.decode(value, { stream: true });
    if (bytes >= limit) return text;
  }
}
