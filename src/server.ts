import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { openStorage, type Storage } from './storage/index.js';

export interface ServerOptions {
  config: Config;
  dataDir: string;
  port: number;
  host: string;
  logger?: boolean | Record<string, unknown>;
  /** PostgreSQL schema override (tests). */
  schema?: string;
}

export interface RunningServer {
  app: FastifyInstance;
  storage: Storage;
  url: string;
  close(): Promise<void>;
}

/** Opens storage, builds the app and listens. `close` lets in-flight requests finish, then closes storage. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const storage = await openStorage({
    databaseUrl: options.config.databaseUrl,
    dataDir: options.dataDir,
    schema: options.schema,
  });
  let app: FastifyInstance;
  try {
    app = await buildApp({
      storage,
      masterKey: options.config.masterKey,
      maxRequestBytes: options.config.maxRequestBytes,
      logger: options.logger,
    });
    await app.listen({ port: options.port, host: options.host });
  } catch (error) {
    await storage.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const shownHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  let closing: Promise<void> | undefined;
  return {
    app,
    storage,
    url: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`,
    close() {
      closing ??= (async () => {
        await app.close();
        await storage.close();
      })();
      return closing;
    },
  };
}
