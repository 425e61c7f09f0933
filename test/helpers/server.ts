import { rmSync } from 'node:fs';
import OpenAI from 'openai';
import OpenAIv4 from 'openai-v4';
import { parseConfig } from '../../src/config.js';
import { startPassthroughServer, startServer, type PassthroughServer, type RunningServer } from '../../src/server.js';
import { E2E_BACKEND, freshSchema, preparedDataDir, tempDir, type Backend } from './storage.js';

export interface TestServer extends RunningServer {
  /** openai 7.x pointed at `${url}/v1`. */
  client: OpenAI;
  /** openai 4.x (the older call style) pointed at `${url}/v1`. */
  clientV4: OpenAIv4;
  apiKey: string;
}

export const TEST_KEY = 'sk-test-master-key';

/** A real listening server on an ephemeral port, with its own fresh storage. */
export async function startTestServer(
  options: {
    backend?: Backend;
    masterKey?: string | null;
    config?: Record<string, unknown>;
    /** Base URL every model name routes to (a fake model); without one, models route to a closed port. */
    modelUrl?: string;
    shutdownGraceMs?: number;
  } = {},
): Promise<TestServer> {
  const backend = options.backend ?? E2E_BACKEND;
  const masterKey = options.masterKey === undefined ? TEST_KEY : options.masterKey;
  const document = {
    model_list: [
      {
        model_name: '*',
        litellm_params: { model: 'openai/*', api_base: options.modelUrl ?? 'http://127.0.0.1:9/v1', api_key: 'sk-fake-upstream' },
      },
    ],
    ...options.config,
    general_settings: {
      ...(options.config?.general_settings as object | undefined),
      ...(masterKey ? { master_key: masterKey } : {}),
    },
  };
  const env = { ...process.env, ASSISTD_MASTER_KEY: undefined };
  const config = parseConfig(document, env);
  if (backend === 'pglite') config.databaseUrl = null;
  const dataDir = backend === 'pglite' ? await preparedDataDir() : tempDir('pg');
  const server = await startServer({
    config,
    dataDir,
    port: 0,
    host: '127.0.0.1',
    schema: backend === 'postgres' ? freshSchema() : undefined,
    shutdownGraceMs: options.shutdownGraceMs ?? 0,
  });
  const apiKey = masterKey ?? 'unused';
  const baseURL = `${server.url}/v1`;
  return {
    ...server,
    apiKey,
    client: new OpenAI({ apiKey, baseURL, maxRetries: 0 }),
    clientV4: new OpenAIv4({ apiKey, baseURL, maxRetries: 0 }),
    async close() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestPassthrough extends PassthroughServer {
  /** openai 7.x pointed at `${url}/v1` with the passthrough's own master key. */
  client: OpenAI;
  apiKey: string;
}

/** A passthrough assistd (config `assistant_settings`) on an ephemeral port: no storage, nothing run here. */
export async function startTestPassthrough(assistantSettings: Record<string, unknown>, masterKey: string | null = TEST_KEY): Promise<TestPassthrough> {
  const config = parseConfig(
    { assistant_settings: assistantSettings, general_settings: masterKey ? { master_key: masterKey } : {} },
    { ...process.env, ASSISTD_MASTER_KEY: undefined },
  );
  const server = await startPassthroughServer({ config, port: 0, host: '127.0.0.1', shutdownGraceMs: 0 });
  const apiKey = masterKey ?? 'unused';
  return { ...server, apiKey, client: new OpenAI({ apiKey, baseURL: `${server.url}/v1`, maxRetries: 0 }) };
}

/** Raw HTTP against the server, for exact status and body assertions. */
export async function http(
  server: { url: string; apiKey: string },
  method: string,
  path: string,
  options: { body?: unknown; rawBody?: string; headers?: Record<string, string>; auth?: boolean; signal?: AbortSignal } = {},
) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.auth !== false) headers.authorization ??= `Bearer ${server.apiKey}`;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${server.url}${path}`, { method, headers, body, signal: options.signal });
  const text = await response.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}
