import type { FastifyInstance } from 'fastify';
import { buildApp, buildPassthroughApp } from './app.js';
import type { Config } from './config.js';
import { openStorage, type Storage } from './storage/index.js';
import { ModelRegistry } from './providers/registry.js';
import { RunService } from './engine/run-service.js';
import { IngestionService } from './ingest/ingestion.js';
import { VectorStoreService } from './ingest/vector-store-service.js';
import { toNewMessage } from './http/content.js';
import pino from 'pino';
import { CodeInterpreter } from './sandbox/sandbox.js';
import { Metrics } from './metrics.js';

function runLogger(logger: ServerOptions['logger']) {
  if (!logger) return pino({ enabled: false });
  return pino({ ...(typeof logger === 'object' ? logger : {}), name: 'runs' });
}

const FILE_SWEEP_MS = 60_000;

/** Removes the files past their expiry and their contents. */
export async function sweepExpiredFiles(storage: Storage): Promise<void> {
  for (const blobId of await storage.files.deleteExpiredFiles()) await storage.blobs.delete(blobId);
}

/** The port listened on (the one chosen, when asked for port 0) and a URL to reach it from this machine. */
function listeningAt(app: FastifyInstance, options: { port: number; host: string }): { port: number; url: string } {
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const shownHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return { port, url: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}` };
}

/** The connection timeouts of `assistd_settings`, in ms, as both route sets take them. */
function connectionTimeouts(settings: Config['settings']) {
  return {
    headersMs: settings.headersTimeoutSeconds * 1000,
    requestMs: settings.requestTimeoutSeconds * 1000,
    keepAliveMs: settings.keepAliveTimeoutSeconds * 1000,
    uploadMs: settings.uploadTimeoutSeconds * 1000,
  };
}

/** How long, when stopping, the last events of stopped streams get to reach their clients. */
const FLUSH_MS = 1_000;

export interface ServerOptions {
  config: Config;
  dataDir: string;
  port: number;
  host: string;
  /** false: no socket at all (the in-process mode of the LiteLLM functions, which call `app.inject`). */
  listen?: boolean;
  /**
   * `all` (API and worker, the default); `api` (`serve --no-worker`: streamed runs execute here,
   * background runs and ingestion are left to workers); `worker` (`assistd worker`: no HTTP; executes
   * background and recovered runs, indexes files). `api` and `worker` need PostgreSQL.
   */
  role?: 'all' | 'api' | 'worker';
  logger?: boolean | Record<string, unknown>;
  /** PostgreSQL schema override (tests). */
  schema?: string;
  /** Told what start-up is doing while it takes a while (creating the embedded database, migrating). */
  progress?: (line: string) => void;
  /** How long running runs may take to finish at shutdown before they are left for the next start (default: the config's). */
  shutdownGraceMs?: number;
}

export interface RunningServer {
  app: FastifyInstance;
  storage: Storage;
  runs: RunService;
  models: ModelRegistry;
  ingestion: IngestionService;
  vectorStores: VectorStoreService;
  codeInterpreter: CodeInterpreter;
  url: string;
  /** The port listened on (the one chosen, when asked for port 0). */
  port: number;
  /** Lets requests and runs in flight finish (for the grace period), then closes storage. */
  close(): Promise<void>;
  /** During `close`: stops the runs in flight now and, a moment later, every connection. */
  stopNow(): void;
}

/** Opens storage, builds the app and listens. `close` lets in-flight requests finish, then closes storage. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  if (options.config.passthrough) throw new Error('the config sets assistant_settings (passthrough): start it with startPassthroughServer');
  const storage = await openStorage({
    databaseUrl: options.config.databaseUrl,
    dataDir: options.dataDir,
    schema: options.schema,
    progress: options.progress,
  });
  const settings = options.config.settings;
  const runLog = runLogger(options.logger);
  const models = new ModelRegistry(options.config.modelList, settings, process.env, options.config.router, (message) => runLog.warn(message));
  const ingestion = new IngestionService({ storage, models, settings, log: runLog });
  const vectorStores = new VectorStoreService({ storage, models, settings, ingestion });
  const codeInterpreter = await CodeInterpreter.start(settings.codeInterpreter, options.dataDir, runLog);
  const metrics = new Metrics({ sql: storage.sql, liveKernels: () => codeInterpreter.pool?.liveKernels ?? null });
  const runs = new RunService({
    codeInterpreter,
    storage,
    models,
    settings: options.config.settings,
    log: runLog,
    toNewMessage,
    vectorStores,
    metrics,
    worker: options.role !== 'api',
  });
  let app: FastifyInstance;
  try {
    app = await buildApp({
      storage,
      runs,
      vectorStores,
      pollAfterMs: options.config.settings.pollAfterMs,
      metrics,
      masterKey: options.config.masterKey,
      maxRequestBytes: options.config.maxRequestBytes,
      maxUploadBytes: settings.maxUploadSizeMb * 1024 * 1024,
      logger: options.logger,
      timeouts: connectionTimeouts(settings),
    });
    // A burst of streaming clients must not overflow the accept queue (Node's default is 511).
    if (options.listen !== false && options.role !== 'worker') await app.listen({ port: options.port, host: options.host, backlog: 4096 });
    else await app.ready();
    // An embedded store belongs to this process alone: every unfinished run in it is an orphan.
    await runs.start({ recoverAll: storage.sql.kind === 'pglite' });
    if (options.role !== 'api') await ingestion.start({ recoverAll: storage.sql.kind === 'pglite' });
    await storage.blobs.sweep();
  } catch (error) {
    await runs.close(0);
    await ingestion.close();
    await codeInterpreter.close();
    await storage.close();
    throw error;
  }
  // In-process (no socket): no address to give.
  const { port, url } = options.listen !== false && options.role !== 'worker' ? listeningAt(app, options) : { port: 0, url: '' };
  // Expired files are removed, contents and all, a minute at most after they expire.
  const fileSweep = setInterval(() => {
    void sweepExpiredFiles(storage).catch((error: unknown) => runLog.warn({ err: error }, 'expired file sweep failed; retrying'));
  }, FILE_SWEEP_MS);
  fileSweep.unref();
  let closing: Promise<void> | undefined;
  return {
    app,
    storage,
    runs,
    models,
    ingestion,
    vectorStores,
    codeInterpreter,
    url,
    port,
    stopNow() {
      runs.stopAll();
      setTimeout(() => app.server.closeAllConnections(), FLUSH_MS).unref();
    },
    close() {
      closing ??= (async () => {
        clearInterval(fileSweep);
        const graceMs = options.shutdownGraceMs ?? settings.shutdownGraceSeconds * 1000;
        // Past the grace period (and the moment its last events need to go out), connections that
        // are still open (a client that stopped reading) are closed, so the process always exits.
        const deadline = setTimeout(() => app.server.closeAllConnections(), graceMs + FLUSH_MS);
        try {
          // Streams end when their runs' passes end, so runs are drained alongside the HTTP server.
          await Promise.all([app.close(), runs.close(graceMs), ingestion.close()]);
        } finally {
          clearTimeout(deadline);
        }
        await codeInterpreter.close();
        await storage.close();
      })();
      return closing;
    },
  };
}

export interface PassthroughServer {
  app: FastifyInstance;
  /** Where requests go, for the start-up line (secrets redacted). */
  upstream: string;
  url: string;
  port: number;
  /** Lets requests in flight (streams included) finish, for the grace period, then closes the upstream connections. */
  close(): Promise<void>;
  /** During `close`: closes every connection a moment from now. */
  stopNow(): void;
}

/**
 * Passthrough mode (`assistant_settings`): listens and forwards every Assistants route upstream.
 * Nothing is stored or run here, so no storage is opened and no engine, worker, ingestion or
 * sandbox starts: every object lives upstream, and workers sharing a DATABASE_URL with a native
 * deployment must not claim its runs.
 */
export async function startPassthroughServer(options: Omit<ServerOptions, 'dataDir' | 'schema' | 'progress'>): Promise<PassthroughServer> {
  const passthrough = options.config.passthrough;
  if (!passthrough) throw new Error('the config sets no assistant_settings: start it with startServer');
  const settings = options.config.settings;
  const { app, forwarder } = await buildPassthroughApp({
    passthrough,
    masterKey: options.config.masterKey,
    maxRequestBytes: options.config.maxRequestBytes,
    logger: options.logger,
    timeouts: connectionTimeouts(settings),
  });
  try {
    await app.listen({ port: options.port, host: options.host, backlog: 4096 });
  } catch (error) {
    await app.close();
    throw error;
  }
  const { port, url } = listeningAt(app, options);
  let closing: Promise<void> | undefined;
  return {
    app,
    upstream: forwarder.description,
    url,
    port,
    stopNow() {
      setTimeout(() => app.server.closeAllConnections(), FLUSH_MS).unref();
    },
    close() {
      closing ??= (async () => {
        const graceMs = options.shutdownGraceMs ?? settings.shutdownGraceSeconds * 1000;
        const deadline = setTimeout(() => app.server.closeAllConnections(), graceMs + FLUSH_MS);
        try {
          await app.close();
        } finally {
          clearTimeout(deadline);
        }
      })();
      return closing;
    },
  };
}
