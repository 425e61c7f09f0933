import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { headersTooLarge, malformedHttp, requestTimeout, type ApiError } from '../errors.js';

export interface ConnectionLimits {
  /** Headers must have arrived this long after the request began (ms); 0: no limit. */
  headersTimeoutMs: number;
  /** The whole request, body included, likewise (ms); 0: no limit. */
  requestTimeoutMs: number;
  /** The size Node's parser allows the request line and headers together. */
  maxHeaderBytes: number;
}

type ClientError = Error & { code?: string; reason?: string };

/** The response a request in flight on `socket` already has, once its headers were parsed. */
const responseOf = (socket: Socket) => (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;

/** What went wrong below the routes, as an OpenAI error. */
function errorFor(error: ClientError, socket: Socket, limits: ConnectionLimits): ApiError {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    // A response object exists once the headers were parsed: it was the body that stalled.
    return responseOf(socket)
      ? requestTimeout('body', limits.requestTimeoutMs / 1000)
      : requestTimeout('headers', (limits.headersTimeoutMs || limits.requestTimeoutMs) / 1000);
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') return headersTooLarge(limits.maxHeaderBytes);
  // llhttp's reasons are fixed texts ("Invalid method encountered"), never the client's bytes.
  return malformedHttp(error.reason ?? error.code ?? 'unparseable request');
}

/**
 * Answers what Node's HTTP parser and its request timers reject (stalled headers or body, oversized
 * headers, malformed requests) in OpenAI's error shape, then closes the connection. A response that
 * has begun (a streamed run) is never interleaved with an error; its connection is just closed.
 */
export function connectionErrorHandler(limits: ConnectionLimits) {
  return (error: ClientError, socket: Socket) => {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    if (socket.writable && !responseOf(socket)?.headersSent) {
      const apiError = errorFor(error, socket, limits);
      const body = JSON.stringify(apiError.toJSON());
      socket.write(
        `HTTP/1.1 ${apiError.statusCode} ${STATUS_CODES[apiError.statusCode] ?? 'Error'}\r\n` +
          'content-type: application/json; charset=utf-8\r\n' +
          `content-length: ${Buffer.byteLength(body)}\r\n` +
          'connection: close\r\n\r\n' +
          body,
      );
    }
    socket.destroySoon();
  };
}
