import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { headersTooLarge, malformedHttp, requestTimeout, uploadStalled, type ApiError } from '../errors.js';

export interface ConnectionLimits {
  /** Headers must have arrived this long after the request began (ms); 0: no limit. */
  headersTimeoutMs: number;
  /** The size Node's parser allows the request line and headers together. */
  maxHeaderBytes: number;
}

type ClientError = Error & { code?: string; reason?: string };

/** The response a request in flight on `socket` already has, once its headers were parsed. */
const responseOf = (socket: Socket) => (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;

/** What went wrong below the routes, as an OpenAI error. */
function errorFor(error: ClientError, limits: ConnectionLimits): ApiError {
  // Node times the headers only; bodies are watched by watchRequestBody.
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return requestTimeout('headers', limits.headersTimeoutMs / 1000);
  if (error.code === 'HPE_HEADER_OVERFLOW') return headersTooLarge(limits.maxHeaderBytes);
  // llhttp's reasons are fixed texts ("Invalid method encountered"), never the client's bytes.
  return malformedHttp(error.reason ?? error.code ?? 'unparseable request');
}

/**
 * Writes `error` as the connection's response and closes it: below the routes, where no reply
 * object can be used. A response that has begun (a streamed run) is never interleaved with an
 * error; its connection is just closed.
 */
export function answerAndClose(socket: Socket, error: ApiError): void {
  if (socket.destroyed) return;
  if (socket.writable && !responseOf(socket)?.headersSent) {
    const body = JSON.stringify(error.toJSON());
    socket.write(
      `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode] ?? 'Error'}\r\n` +
        'content-type: application/json; charset=utf-8\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        'connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroySoon();
}

/**
 * Answers what Node's HTTP parser and its headers timer reject (stalled headers, oversized headers,
 * malformed requests) in OpenAI's error shape, then closes the connection.
 */
export function connectionErrorHandler(limits: ConnectionLimits) {
  return (error: ClientError, socket: Socket) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    answerAndClose(socket, errorFor(error, limits));
  };
}

/** How often an upload's progress is looked at. */
const UPLOAD_CHECK_MS = 1_000;

/**
 * Holds a request's body to its limits: all of it within `totalMs` of its headers, and (for
 * uploads, long by nature) no stall of `idleMs` without a byte. Past either, the request is
 * answered with a 408 and its connection closed. Nothing is read from the request here, so the
 * body parser sees every byte.
 */
export function watchRequestBody(request: IncomingMessage, limits: { totalMs: number; idleMs?: number }): void {
  const { headers } = request;
  const hasBody = headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
  if (!hasBody || request.complete) return;
  const socket = request.socket;
  const timers: NodeJS.Timeout[] = [];
  const stop = () => {
    for (const timer of timers) clearTimeout(timer);
    request.off('end', stop);
    request.off('close', stop);
  };
  const fail = (error: ApiError) => {
    stop();
    if (!request.complete) answerAndClose(socket, error);
  };
  if (limits.totalMs > 0) timers.push(setTimeout(() => fail(requestTimeout('body', limits.totalMs / 1000)), limits.totalMs));
  const idleMs = limits.idleMs;
  if (idleMs) {
    let lastBytes = socket.bytesRead;
    let lastProgress = Date.now();
    timers.push(
      setInterval(() => {
        if (socket.bytesRead !== lastBytes) {
          lastBytes = socket.bytesRead;
          lastProgress = Date.now();
        } else if (Date.now() - lastProgress >= idleMs) fail(uploadStalled(idleMs / 1000));
      }, Math.min(UPLOAD_CHECK_MS, idleMs)),
    );
  }
  for (const timer of timers) timer.unref();
  request.once('end', stop);
  request.once('close', stop);
}
