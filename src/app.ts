import { maxHeaderSize } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyError } from 'fastify';
import { ApiError, bodyTooLarge, databaseUnavailable, isDatabaseUnavailable, expectationFailed, invalidJson, invalidUrl, missingHost, notFound, quote, serverError, shuttingDown } from './errors.js';
import { connectionErrorHandler, watchRequestBody } from './http/connection-errors.js';
import { ID_PATTERN } from './api/schemas.js';
import type { Storage } from './storage/index.js';
import { createAuthCheck } from './http/auth.js';
import { openApiDocument } from './http/openapi.js';
import { assistantRoutes } from './http/routes/assistants.js';
import { messageRoutes } from './http/routes/messages.js';
import { threadRoutes } from './http/routes/threads.js';
import { runRoutes } from './http/routes/runs.js';
import { fileRoutes } from './http/routes/files.js';
import { vectorStoreRoutes } from './http/routes/vector-stores.js';
import type { VectorStoreService } from './ingest/vector-store-service.js';
import multipart from '@fastify/multipart';
import type { PassthroughSettings } from './config.js';
import { Forwarder, passthroughRoutes } from './http/passthrough.js';
import type { RunService } from './engine/run-service.js';
import type { Metrics } from './metrics.js';

export interface AppOptions {
  storage: Storage;
  runs: RunService;
  vectorStores: VectorStoreService;
  pollAfterMs: number;
  masterKey: string | null;
  maxRequestBytes: number;
  /** The largest file `POST /files` takes. */
  maxUploadBytes: number;
  /** pino options, or false for silence (tests). */
  logger?: boolean | Record<string, unknown>;
  /**
   * Connection timeouts (ms; 0 disables one), defaults in config.ts: headers, a body after its
   * headers (for uploads: a stall without a byte), idle keep-alive, and an upload's whole body.
   */
  timeouts: { headersMs: number; requestMs: number; keepAliveMs: number; uploadMs: number };
  /** `GET /metrics` (Prometheus) and the HTTP request histogram; none: no /metrics route. */
  metrics?: Metrics;
}

/** How often Node looks for requests past their headers or request timeout (its default is 30 s). */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

const API_PREFIX = '/v1';

/** What the native app and the passthrough app share: the server's limits, logging and error shaping. */
type BaseOptions = Pick<AppOptions, 'maxRequestBytes' | 'logger' | 'timeouts'>;

/**
 * A Fastify instance with everything both route sets share: connection limits and timeouts, the
 * OpenAI-shaped error, not-found and framework-error answers, the 503 once closing, request ids,
 * and the list of `/v1` routes `/openapi.json` describes. No routes and no body parsers.
 */
function baseApp(options: BaseOptions): { app: FastifyInstance; routes: Set<string>; isClosing: () => boolean } {
  const { headersMs, requestMs, keepAliveMs, uploadMs } = options.timeouts;
  const app = Fastify({
    bodyLimit: options.maxRequestBytes,
    logger:
      options.logger === undefined || options.logger === false
        ? false
        : {
            ...(typeof options.logger === 'object' ? options.logger : {}),
            redact: ['req.headers.authorization', 'req.headers["api-key"]'],
          },
    requestIdHeader: 'x-request-id',
    // A request must arrive whole in time; once it has, its response (a streamed run) may take as
    // long as it needs. Slow or stalled clients get a 408 and lose their connection. Node times
    // the headers; bodies are timed per route (an upload may take long, a JSON body may not), by
    // watchRequestBody below.
    http: {
      headersTimeout: headersMs,
      requestTimeout: 0,
      connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
      // Node would answer a missing Host with an empty 400 of its own; the hook below answers it.
      requireHostHeader: false,
    },
    keepAliveTimeout: keepAliveMs,
    clientErrorHandler: connectionErrorHandler({ headersTimeoutMs: headersMs, maxHeaderBytes: maxHeaderSize }),
    // Errors Fastify raises before routing (a malformed URL, an overlong path segment) still leave
    // in OpenAI's shape, quoting the URL only in part.
    frameworkErrors: (error, request, reply) => {
      const path = request.raw.url?.split('?')[0] ?? '';
      const apiError =
        error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? invalidUrl(request.method, path, 414, ': a path segment is too long.')
          : error.code === 'FST_ERR_BAD_URL'
            ? invalidUrl(request.method, path, 400, ': the path is not a valid URL.')
            : new ApiError(error.statusCode ?? 400, quote(error.message), 'invalid_request_error');
      void reply.code(apiError.statusCode as never).send(apiError.toJSON() as never);
    },
    genReqId: () => `req_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`,
    // Requests arriving once shutdown began get our own 503 (below), in OpenAI's shape.
    return503OnClosing: false,
  });

  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    let apiError: ApiError;
    if (error instanceof ApiError) apiError = error;
    else if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') apiError = bodyTooLarge(options.maxRequestBytes);
    else if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      apiError = new ApiError(error.statusCode, error.message, 'invalid_request_error');
    } else if (typeof error.code === 'string' && error.code.startsWith('22')) {
      // PostgreSQL data exceptions (class 22) are caused by the input, never by the server.
      apiError = new ApiError(400, `Invalid request: ${quote(error.message)}`, 'invalid_request_error');
    } else if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error, requestId: request.id }, 'database unavailable');
      apiError = databaseUnavailable();
    } else {
      request.log.error({ err: error, requestId: request.id }, 'unhandled error');
      apiError = serverError(request.id);
    }
    void reply.code(apiError.statusCode).headers(apiError.headers).send(apiError.toJSON());
  });

  app.setNotFoundHandler((request, reply) => {
    const error = invalidUrl(request.method, request.url.split('?')[0] ?? request.url);
    void reply.code(error.statusCode).send(error.toJSON());
  });

  // Once shutdown starts, responses still in flight close their connections, so a keep-alive
  // client cannot hold the process open until its idle timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request) => {
    if (closing) throw shuttingDown();
    const upload = (request.routeOptions.config as { upload?: boolean } | undefined)?.upload === true;
    watchRequestBody(request.raw, upload ? { totalMs: uploadMs, idleMs: requestMs } : { totalMs: requestMs });
    const { httpVersionMajor, httpVersionMinor } = request.raw;
    if (request.headers.host === undefined && (httpVersionMajor > 1 || httpVersionMinor > 0)) throw missingHost();
  });
  // Node answers an Expect header it does not know (anything but 100-continue) with an empty 417
  // unless someone listens; this answers in OpenAI's shape instead.
  app.server.on('checkExpectation', (_request, response) => {
    const error = expectationFailed();
    const body = JSON.stringify(error.toJSON());
    response.writeHead(error.statusCode, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    response.end(body);
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (closing) reply.header('connection', 'close');
  });

  const routes = new Set<string>();
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith(API_PREFIX + '/')) return;
    const path = route.url.slice(API_PREFIX.length).replace(/:(\w+)/g, '{$1}');
    for (const method of [route.method].flat()) routes.add(`${method} ${path}`);
  });

  return { app, routes, isClosing: () => closing };
}

/** Builds the HTTP application; it never listens by itself. */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { app, routes } = baseApp(options);
  // Bodies are JSON whatever their declared type (curl -d sends form encoding); an empty body is `{}`.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch {
      done(invalidJson(), undefined);
    }
  });

  // File uploads (POST /files) stream through busboy straight to the blob store.
  await app.register(multipart, {
    limits: { fileSize: options.maxUploadBytes, files: 1, fields: 16, fieldSize: 64 * 1024, parts: 32, headerPairs: 64 },
    throwFileSizeLimit: true,
  });

  app.get('/health', async () => {
    await options.storage.sql.query('SELECT 1');
    return { status: 'ok', storage: options.storage.sql.kind };
  });
  const metrics = options.metrics;
  if (metrics) {
    // Like /health (and LiteLLM's /metrics), open to scrapers: counts and timings, no contents or keys.
    app.get('/metrics', async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.header('content-type', metrics.registry.contentType).send(text);
    });
    app.addHook('onResponse', async (request, reply) => {
      // The route's pattern, never the path itself: ids would make every request a series of its own.
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    });
  }
  const document = openApiDocument(routes);
  app.get('/openapi.json', async () => document());

  const authenticate = options.masterKey ? createAuthCheck(options.masterKey) : null;
  const api = async (scope: FastifyInstance) => {
    if (authenticate) scope.addHook('onRequest', async (request) => authenticate(request));
    // An id that cannot be one of ours names nothing: 404 without asking the database.
    scope.addHook('preValidation', async (request) => {
      for (const [name, value] of Object.entries((request.params ?? {}) as Record<string, string>)) {
        if (name.endsWith('_id') && !ID_PATTERN.test(value)) throw notFound(name.slice(0, -3).replace('_', ' '), value);
      }
    });
    assistantRoutes(scope, options.storage, (model) => options.runs.assertModelRoutes(model), options.vectorStores);
    threadRoutes(scope, options.storage, options.vectorStores, (threadId) => options.runs.threadDeleted(threadId));
    messageRoutes(scope, options.storage, options.vectorStores);
    runRoutes(scope, options.storage, options.runs, options.pollAfterMs, options.vectorStores);
    fileRoutes(scope, options.storage, options.maxUploadBytes);
    vectorStoreRoutes(scope, options.storage, options.vectorStores, options.pollAfterMs);
  };
  // LiteLLM's proxy serves every route with and without the /v1 prefix; so do we.
  await app.register(api, { prefix: API_PREFIX });
  await app.register(api);
  return app;
}

export interface PassthroughAppOptions extends BaseOptions {
  passthrough: PassthroughSettings;
  masterKey: string | null;
}

/**
 * The passthrough application (`assistant_settings`): the same routes, auth and error shaping as
 * buildApp, every Assistants route forwarded upstream. Needs no storage and no engine.
 */
export async function buildPassthroughApp(options: PassthroughAppOptions): Promise<{ app: FastifyInstance; forwarder: Forwarder }> {
  const { app, routes, isClosing } = baseApp(options);
  const forwarder = new Forwarder(options.passthrough);
  app.addHook('onClose', async () => forwarder.close());
  // Bodies are not parsed here: they stream to the upstream untouched.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  app.get('/health', async () => ({ status: 'ok', mode: 'passthrough' }));
  const document = openApiDocument(routes);
  app.get('/openapi.json', async () => document());

  const authenticate = options.masterKey ? createAuthCheck(options.masterKey) : null;
  const api = (prefix: string) => async (scope: FastifyInstance) => {
    if (authenticate) scope.addHook('onRequest', async (request) => authenticate(request));
    passthroughRoutes(scope, prefix, forwarder, isClosing);
  };
  await app.register(api(API_PREFIX), { prefix: API_PREFIX });
  await app.register(api(''));
  return { app, forwarder };
}
