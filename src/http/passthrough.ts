/**
 * Passthrough (LiteLLM's `assistant_settings`): every Assistants route forwarded to an upstream
 * Assistants API (OpenAI, Azure OpenAI, another assistd) instead of being run here. Bodies stream
 * both ways through node:http with backpressure (an upload is never held in memory, a run's event
 * stream goes out chunk by chunk as it comes in); only credentials and hop-by-hop headers change.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import type { PassthroughSettings } from '../config.js';
import { invalidUrl, upstreamTimeout, upstreamUnreachable } from '../errors.js';
import { redactUrl } from '../redact.js';

/**
 * Azure's Assistants API (v2) exists only in its preview api-versions (none of the GA ones, such as
 * 2024-10-21, carries /assistants); this is the latest that does. LiteLLM defaults to a preview too.
 */
export const AZURE_ASSISTANTS_API_VERSION = '2025-04-01-preview';

/**
 * The Assistants routes, as the native route files declare them (without the /v1 prefix). The
 * passthrough test holds this list to the native server's (`/openapi.json` lists both).
 */
export const ASSISTANTS_ROUTES: ReadonlyArray<{ methods: HTTPMethods[]; url: string; upload?: true }> = [
  { methods: ['GET', 'POST'], url: '/assistants' },
  { methods: ['GET', 'POST', 'DELETE'], url: '/assistants/:assistant_id' },
  { methods: ['POST'], url: '/threads' },
  { methods: ['POST'], url: '/threads/runs' },
  { methods: ['GET', 'POST', 'DELETE'], url: '/threads/:thread_id' },
  { methods: ['GET', 'POST'], url: '/threads/:thread_id/messages' },
  { methods: ['GET', 'POST', 'DELETE'], url: '/threads/:thread_id/messages/:message_id' },
  { methods: ['GET', 'POST'], url: '/threads/:thread_id/runs' },
  { methods: ['GET', 'POST'], url: '/threads/:thread_id/runs/:run_id' },
  { methods: ['POST'], url: '/threads/:thread_id/runs/:run_id/cancel' },
  { methods: ['POST'], url: '/threads/:thread_id/runs/:run_id/submit_tool_outputs' },
  { methods: ['GET'], url: '/threads/:thread_id/runs/:run_id/steps' },
  { methods: ['GET'], url: '/threads/:thread_id/runs/:run_id/steps/:step_id' },
  { methods: ['GET'], url: '/files' },
  // Uploads are timed as uploads (assistd_settings.upload_timeout_seconds), not as JSON bodies.
  { methods: ['POST'], url: '/files', upload: true },
  { methods: ['GET', 'DELETE'], url: '/files/:file_id' },
  { methods: ['GET'], url: '/files/:file_id/content' },
  { methods: ['GET', 'POST'], url: '/vector_stores' },
  { methods: ['GET', 'POST', 'DELETE'], url: '/vector_stores/:vector_store_id' },
  { methods: ['POST'], url: '/vector_stores/:vector_store_id/search' },
  { methods: ['GET', 'POST'], url: '/vector_stores/:vector_store_id/files' },
  { methods: ['GET', 'POST', 'DELETE'], url: '/vector_stores/:vector_store_id/files/:file_id' },
  { methods: ['GET'], url: '/vector_stores/:vector_store_id/files/:file_id/content' },
  { methods: ['POST'], url: '/vector_stores/:vector_store_id/file_batches' },
  { methods: ['GET'], url: '/vector_stores/:vector_store_id/file_batches/:batch_id' },
  { methods: ['POST'], url: '/vector_stores/:vector_store_id/file_batches/:batch_id/cancel' },
  { methods: ['GET'], url: '/vector_stores/:vector_store_id/file_batches/:batch_id/files' },
];

/** RFC 9110 §7.6.1: meaningful for one connection only, never forwarded (either way). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/**
 * Request headers that belong to the client's side alone: its credentials (the upstream gets
 * assistd's key instead), its OpenAI account selectors (the upstream account is assistd's; the SDKs
 * send these from OPENAI_ORG_ID / OPENAI_PROJECT_ID unasked), Host (the upstream's own), and
 * Expect (Node has already answered 100-continue; the upstream gets the body without waiting).
 */
const CLIENT_ONLY = new Set(['host', 'authorization', 'api-key', 'openai-organization', 'openai-project', 'expect']);

/** The header names a Connection header lists: hop-by-hop as well. */
function connectionTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return [value]
    .flat()
    .flatMap((item) => item.split(','))
    .map((token) => token.trim().toLowerCase())
    .filter((token) => token !== '');
}

function withoutHopByHop(headers: IncomingHttpHeaders, also: Set<string>): OutgoingHttpHeaders {
  const dropped = new Set(connectionTokens(headers.connection));
  const kept: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || also.has(name) || dropped.has(name)) continue;
    kept[name] = value;
  }
  return kept;
}

/** Set when the upstream said nothing for the configured timeout. */
class UpstreamTimeoutError extends Error {
  readonly code = 'UPSTREAM_TIMEOUT';
}

/**
 * A path segment that is, once decoded, `.` or `..` or holds a slash would let a client steer a
 * request signed with assistd's key to an upstream route outside the Assistants API (a URL
 * parser or server on the way resolves `..`). No Assistants id looks like that.
 */
function escapesRoute(path: string): boolean {
  return path.split('/').some((segment) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return true;
    }
    return decoded === '.' || decoded === '..' || decoded.includes('/') || decoded.includes('\\');
  });
}

/** Sends requests to the upstream Assistants API and streams its answers back. */
export class Forwarder {
  private readonly transport: typeof http | typeof https;
  private readonly agent: http.Agent;
  private readonly origin: { protocol: string; hostname: string; port: string };
  private readonly basePath: string;
  private readonly credentials: OutgoingHttpHeaders;
  private readonly timeoutMs: number;
  /** For the start-up line: where requests go, secrets redacted. */
  readonly description: string;

  constructor(private readonly settings: PassthroughSettings) {
    const base = new URL(settings.apiBase);
    this.transport = base.protocol === 'https:' ? https : http;
    // Kept-alive connections: the upstream is one host, asked over and over.
    this.agent = new this.transport.Agent({ keepAlive: true, scheduling: 'lifo' });
    this.origin = { protocol: base.protocol, hostname: base.hostname.replace(/^\[|\]$/g, ''), port: base.port };
    let basePath = base.pathname.replace(/\/+$/, '');
    // Azure serves the Assistants API under {endpoint}/openai/… (api_base is the resource endpoint).
    if (settings.provider === 'azure' && !basePath.endsWith('/openai')) basePath += '/openai';
    this.basePath = basePath;
    this.credentials =
      settings.apiKey === null ? {} : settings.provider === 'azure' ? { 'api-key': settings.apiKey } : { authorization: `Bearer ${settings.apiKey}` };
    this.timeoutMs = settings.timeoutSeconds * 1000;
    const shown = new URL(base);
    shown.pathname = basePath;
    this.description =
      `${settings.provider} at ${redactUrl(shown.toString())}` +
      (settings.provider === 'azure' ? ` (api-version ${settings.apiVersion ?? `${AZURE_ASSISTANTS_API_VERSION}, the default`})` : '');
  }

  /** The upstream path for a client's path and query (already without the /v1 prefix), byte for byte where possible. */
  upstreamPath(pathAndQuery: string): string {
    const at = pathAndQuery.indexOf('?');
    const path = at < 0 ? pathAndQuery : pathAndQuery.slice(0, at);
    let query = at < 0 ? '' : pathAndQuery.slice(at + 1);
    if (this.settings.provider === 'azure') {
      // The configured api-version wins; without one, a client's own is kept, else the default.
      const parts = query === '' ? [] : query.split('&');
      const clientHasVersion = parts.some((part) => part.split('=')[0] === 'api-version');
      if (this.settings.apiVersion !== null || !clientHasVersion) {
        const version = this.settings.apiVersion ?? AZURE_ASSISTANTS_API_VERSION;
        query = [...parts.filter((part) => part.split('=')[0] !== 'api-version'), `api-version=${encodeURIComponent(version)}`].join('&');
      }
    }
    return `${this.basePath}${path}${query === '' ? '' : `?${query}`}`;
  }

  /**
   * Forwards one request. Resolves once the upstream's answer has begun to stream back (the reply
   * is then hijacked and piped); rejects, before anything was sent, with the 502 or 504 to answer.
   */
  forward(request: FastifyRequest, reply: FastifyReply, pathAndQuery: string, isClosing: () => boolean): Promise<void> {
    const incoming = request.raw;
    const hasBody = incoming.headers['transfer-encoding'] !== undefined || (incoming.headers['content-length'] ?? '0') !== '0';
    const options: http.RequestOptions = {
      ...this.origin,
      method: incoming.method,
      path: this.upstreamPath(pathAndQuery),
      headers: { ...withoutHopByHop(incoming.headers, CLIENT_ONLY), ...this.credentials },
      agent: this.agent,
    };
    return new Promise<void>((resolve, reject) => {
      let answered = false;
      const attempt = (mayRetry: boolean) => {
        let outgoing: http.ClientRequest;
        try {
          outgoing = this.transport.request(options);
        } catch (error) {
          reject(upstreamUnreachable((error as NodeJS.ErrnoException).code ?? String(error)));
          return;
        }
        // No byte from the upstream for this long (before or during its answer): give up on it.
        outgoing.setTimeout(this.timeoutMs, () => outgoing.destroy(new UpstreamTimeoutError()));
        // A client that goes away takes its upstream request with it.
        const clientGone = () => {
          if (!reply.raw.writableFinished) outgoing.destroy();
        };
        reply.raw.once('close', clientGone);
        outgoing.once('response', (response) => {
          answered = true;
          this.streamBack(request, reply, response, isClosing(), () => reply.raw.off('close', clientGone));
          resolve();
        });
        outgoing.once('error', (error: NodeJS.ErrnoException) => {
          if (answered) return; // the response's own pipeline ends the client's response
          reply.raw.off('close', clientGone);
          // A kept-alive connection the upstream closed just as it was reused: a bodiless request is
          // safe to send once more (the upstream cannot have acted on it), as Node's docs advise.
          if (mayRetry && outgoing.reusedSocket && error.code === 'ECONNRESET' && !reply.raw.destroyed) return attempt(false);
          if (reply.raw.destroyed) request.log.info({ requestId: request.id }, 'passthrough: the client went away; its upstream request was aborted');
          else request.log.warn({ err: error, requestId: request.id }, 'passthrough: upstream request failed');
          reject(error instanceof UpstreamTimeoutError ? upstreamTimeout(this.settings.timeoutSeconds) : upstreamUnreachable(error.code ?? error.message));
        });
        if (!hasBody) {
          outgoing.end();
          return;
        }
        // pipe, not pipeline: a failed upstream must not destroy the client's request, whose
        // connection still has to carry the 502 (Node drains the rest of its body).
        incoming.pipe(outgoing);
        incoming.once('aborted', () => outgoing.destroy());
        incoming.once('error', () => outgoing.destroy());
      };
      attempt(!hasBody);
    });
  }

  private streamBack(request: FastifyRequest, reply: FastifyReply, response: IncomingMessage, closing: boolean, done: () => void): void {
    reply.hijack();
    const raw = reply.raw;
    const headers = withoutHopByHop(response.headers, new Set());
    // The upstream's request id is the one its operator can look up; ours is added only without one.
    headers['x-request-id'] ??= String(request.id);
    if (closing) headers.connection = 'close';
    raw.writeHead(response.statusCode ?? 502, response.statusMessage, headers);
    if (String(response.headers['content-type']).startsWith('text/event-stream')) {
      // An event stream: the client has its headers now, and every event leaves as it arrives.
      raw.socket?.setNoDelay(true);
      raw.flushHeaders();
    }
    pipeline(response, raw, (error) => {
      done();
      if (error && !raw.writableFinished) request.log.info({ err: error, requestId: request.id }, 'passthrough: response stream ended early');
    });
  }

  /** Closes the kept-alive upstream connections. */
  close(): void {
    this.agent.destroy();
  }
}

/**
 * The forwarding route set, registered in a scope whose URLs start with `prefix` ('/v1' or '').
 * Authentication is the scope's (an onRequest hook); nothing else is checked here.
 */
export function passthroughRoutes(scope: FastifyInstance, prefix: string, forwarder: Forwarder, isClosing: () => boolean): void {
  for (const route of ASSISTANTS_ROUTES) {
    scope.route({
      method: route.methods,
      url: route.url,
      config: route.upload ? { upload: true } : {},
      handler: async (request, reply) => {
        const pathAndQuery = request.raw.url!.slice(prefix.length);
        const path = pathAndQuery.split('?')[0]!;
        if (escapesRoute(path)) throw invalidUrl(request.method, `${prefix}${path}`);
        await forwarder.forward(request, reply, pathAndQuery, isClosing);
      },
    });
  }
}
