import type { FastifyReply } from 'fastify';
import type { RunEvent } from '../engine/events.js';

export interface EventStream {
  send(event: RunEvent): void;
  /** Writes `event: done` / `data: [DONE]` and ends the response. */
  end(): void;
  /** Resolves when the client goes away or the stream ended. */
  readonly closed: Promise<void>;
}

/**
 * Takes over the response and writes server-sent events as the Assistants API frames them:
 * `event: <name>\ndata: <json>\n\n`. Each event is written as it comes (no batching).
 */
export function openEventStream(reply: FastifyReply): EventStream {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-request-id': String(reply.request.id),
  });
  raw.socket?.setNoDelay(true);
  let ended = false;
  const closed = new Promise<void>((resolve) => {
    raw.once('close', resolve);
  });
  return {
    send(event) {
      if (ended || raw.destroyed) return;
      raw.write(`event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
    },
    end() {
      if (ended) return;
      ended = true;
      if (!raw.destroyed) raw.end('event: done\ndata: [DONE]\n\n');
    },
    closed,
  };
}
