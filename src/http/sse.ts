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
 * `event: <name>\ndata: <json>\n\n`. Each event is written as it comes; the events of one tick
 * (a step's and a message's created and in_progress events and the first delta, or the deltas of
 * one read from the model) leave in one write: the response is corked until the tick ends.
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
  // In-process requests (app.inject, the LiteLLM functions' local mode) have a socket without one.
  raw.socket?.setNoDelay?.(true);
  let ended = false;
  let corked = false;
  const uncork = () => {
    corked = false;
    raw.uncork();
  };
  const closed = new Promise<void>((resolve) => {
    raw.once('close', resolve);
  });
  return {
    send(event) {
      if (ended || raw.destroyed) return;
      if (!corked) {
        corked = true;
        raw.cork();
        process.nextTick(uncork);
      }
      raw.write(`event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`);
    },
    end() {
      if (ended) return;
      ended = true;
      if (raw.destroyed) return;
      const socket = raw.socket;
      // A response counts as done once ended, and Node's close drops "done" connections at once,
      // buffered bytes and all: a client that reads slowly would lose the end of its stream. So
      // the response is ended only once the last event has left for the client (a write's
      // callback runs when its bytes, and so all before them, are handed to the system).
      raw.write('event: done\ndata: [DONE]\n\n', () =>
        // (chunk, encoding, callback): in-process responses read a lone callback as a chunk
        raw.end('', 'utf8', () => {
          // Shutting down (the server no longer listens): the connection is closed rather than
          // kept alive, unless a request that came in behind this stream now owns it (whose
          // response says Connection: close itself).
          if (!reply.server.server.listening && socket && !(socket as typeof socket & { _httpMessage?: unknown })._httpMessage) socket.destroySoon();
        }),
      );
    },
    closed,
  };
}
