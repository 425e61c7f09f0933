#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.js';
import { DataDirLockedError } from './storage/lock.js';
import { StorageStartError } from './storage/start-errors.js';
import { startPassthroughServer, startServer } from './server.js';

const USAGE = `Usage: assistd serve [--config FILE] [--port N] [--host H] [--data-dir DIR] [--no-worker]
       assistd worker [--config FILE]
       assistd --version

  -c, --config FILE   LiteLLM-compatible YAML config (model_list, general_settings, assistd_settings;
                      assistant_settings: forward every Assistants route to an upstream instead)
  -p, --port N        port to listen on (default 4000)
      --host H        address to bind (default 0.0.0.0; 127.0.0.1 when no master key is set)
      --data-dir DIR  embedded storage directory (default ./.assistd)
      --no-worker     serve the API and stream runs, but leave background runs and file indexing
                      to \`assistd worker\` processes (PostgreSQL only)
  worker              no HTTP: execute background and recovered runs and index files, beside
                      API replicas on the same DATABASE_URL
  -h, --help          print this help
  -v, --version       print the version

Environment:
  OPENAI_API_KEY      with no config file: route every model name to OpenAI with this key
  OPENAI_BASE_URL     with no config file: route every model name to this OpenAI-compatible server
                      instead (Ollama: http://127.0.0.1:11434/v1, vLLM: http://127.0.0.1:8000/v1)
  ANTHROPIC_API_KEY, GEMINI_API_KEY, MISTRAL_API_KEY, AZURE_API_KEY (+ AZURE_API_BASE, AZURE_API_VERSION),
  AWS_ACCESS_KEY_ID (+ AWS_SECRET_ACCESS_KEY, AWS_REGION_NAME), GROQ_API_KEY, ...
                      route model names with that provider's prefix (anthropic/claude-3-5-haiku-latest)
                      to it, as LiteLLM does; ollama/<name> goes to OLLAMA_API_BASE or 127.0.0.1:11434
  ASSISTD_MASTER_KEY  the key clients must send (when the config sets no general_settings.master_key)
  DATABASE_URL        a PostgreSQL server (with pgvector) instead of the embedded store
  ASSISTD_DATA_DIR    the embedded storage directory, when --data-dir is not given
  ASSISTD_LOG_LEVEL   request and run log level: fatal, error, warn (default), info, debug, trace`;

const NO_MODELS =
  'models: none configured, so every run would fail with model_not_found. Next: set OPENAI_API_KEY (OpenAI), ' +
  'or OPENAI_BASE_URL (an OpenAI-compatible server such as Ollama or vLLM), or a provider key such as ANTHROPIC_API_KEY ' +
  '(then name models with its prefix: anthropic/claude-3-5-haiku-latest), or pass --config FILE with a model_list; ' +
  'see "Models" in the README'

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

/** Where the server listens, said plainly: the address bound, who can reach it, and a URL to use from here. */
function listeningLine(url: string, host: string, port: number): string {
  if (host === '0.0.0.0' || host === '::') {
    return `listening on ${host} port ${port} (every network interface); from this machine: ${url}`;
  }
  const loopback = host === 'localhost' || host === '::1' || host.startsWith('127.');
  return `listening on ${host} port ${port}${loopback ? ' (this machine only)' : ''}: ${url}`;
}

function fail(message: string): never {
  process.stderr.write(`assistd: ${message}\n`);
  process.exit(1);
}

async function serve(argv: string[], command: 'serve' | 'worker' = 'serve') {
  const { values } = parseArgs({
    args: argv,
    options: {
      'no-worker': { type: 'boolean' },
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.version) {
    process.stdout.write(`assistd ${version()}\n`);
    return;
  }
  const port = values.port === undefined ? 4000 : /^\d{1,5}$/.test(values.port) ? Number(values.port) : NaN;
  if (!(port >= 0 && port <= 65535)) fail(`--port must be an integer from 0 to 65535, got '${values.port}'`);

  const config = loadConfig(values.config);
  const role = command === 'worker' ? 'worker' : values['no-worker'] ? 'api' : 'all';
  if (role !== 'all' && !config.databaseUrl) fail(`${role === 'worker' ? 'assistd worker' : '--no-worker'} needs PostgreSQL (DATABASE_URL or general_settings.database_url): processes share their work through it`);
  if (role !== 'all' && config.passthrough) fail(`${role === 'worker' ? 'assistd worker' : '--no-worker'} has no meaning with assistant_settings (passthrough runs nothing)`);
  const log = (line: string) => process.stdout.write(`assistd: ${line}\n`);
  const warn = (line: string) => process.stderr.write(`assistd: warning: ${line}\n`);
  if (config.ignoredKeys.length > 0) warn(`ignoring config keys assistd does not use: ${config.ignoredKeys.join(', ')}`);

  let host = values.host ?? '0.0.0.0';
  if (!config.masterKey && role !== 'worker') {
    if (values.host === undefined) host = '127.0.0.1';
    warn(
      `no master key is set (general_settings.master_key or ASSISTD_MASTER_KEY): the API is open to anyone who can reach ${host}` +
        (config.passthrough ? ', and every request is forwarded with the upstream key (assistant_settings)' : ''),
    );
  }
  const dataDir = resolve(values['data-dir'] ?? process.env.ASSISTD_DATA_DIR ?? '.assistd');

  // Signals are handled from here on: one arriving during start-up stops the server as soon as it is up.
  let stopRequested: string | undefined;
  let stop = (signal: string) => {
    stopRequested ??= signal;
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const logger = { level: process.env.ASSISTD_LOG_LEVEL ?? 'warn' };
  if (config.passthrough) {
    if (config.modelList.length > 0) warn('model_list is not used in passthrough mode: the upstream runs the models');
    const passthrough = await startPassthroughServer({ config, port, host, logger });
    log(listeningLine(passthrough.url, host, passthrough.port));
    log(`passthrough: every Assistants route is forwarded to ${passthrough.upstream}; nothing is stored or run here (assistant_settings)`);
    log(
      config.masterKey
        ? 'passthrough: clients send the master key; the upstream gets assistant_settings.litellm_params.api_key instead, never the client\'s'
        : 'passthrough: the upstream gets assistant_settings.litellm_params.api_key; clients send none',
    );
    stop = stopHandler(config.settings.shutdownGraceSeconds, log, passthrough, false);
    if (stopRequested) stop(stopRequested);
    return;
  }
  const server = await startServer({
    config,
    dataDir,
    port,
    host,
    logger,
    progress: log,
    role,
  });
  if (role === 'worker') {
    log('worker: no HTTP; executes background runs and runs left by stopped processes, and indexes files');
    // No listening socket holds the process open, and the database connections may all go (a
    // restart): this keeps the worker alive until it is told to stop.
    setInterval(() => {}, 60_000);
  }
  else log(listeningLine(server.url, host, server.port));
  if (role === 'api') log('no worker here (--no-worker): streamed runs execute in this process; background runs and file indexing are left to `assistd worker` processes');
  log(`storage: ${server.storage.description}`);
  const routes = server.models.describe();
  const byPrefix = server.models.environmentProviders;
  // Ollama is always reachable by prefix (it needs no key), yet a server with nothing else has no model to speak of.
  if (routes.length === 0 && byPrefix.every((line) => line.startsWith('ollama/'))) log(NO_MODELS);
  for (const route of routes) log(`model: ${route}`);
  if (byPrefix.length > 0) log(`models by provider prefix, with no model_list entry: ${byPrefix.join(', ')}`);
  const embedding = server.models.embedding;
  log(
    embedding
      ? `file_search: hybrid search (full text and vectors from ${embedding.name}${embedding.dimensions ? ` at ${embedding.dimensions} dimensions` : ''}; ${embedding.reason})`
      : 'file_search: full-text search alone (no embedding model: set assistd_settings.embedding_model, or mark a model_list entry model_info.mode: embedding)',
  );
  if (server.codeInterpreter.pool?.driver.isolated === false || server.codeInterpreter.unavailable) warn(server.codeInterpreter.description);
  else log(server.codeInterpreter.description);
  for (const warning of server.models.warnings) warn(warning);

  stop = stopHandler(config.settings.shutdownGraceSeconds, log, server, true);
  if (stopRequested) stop(stopRequested);
}

/** What a signal does once the server is up: a graceful stop, and a second signal stops at once. */
function stopHandler(graceSeconds: number, log: (line: string) => void, server: { close(): Promise<void>; stopNow(): void }, runsHere: boolean) {
  let stopping = false;
  return (signal: string) => {
    if (stopping) {
      log(`${signal} received again: stopping now${runsHere ? '; runs still in progress resume at the next start' : ''}`);
      server.stopNow();
      return;
    }
    stopping = true;
    log(
      `${signal} received: new requests get 503; requests ${runsHere ? 'and runs ' : ''}in flight have up to ${graceSeconds} s to finish ` +
        `(send ${signal} again to stop now)`,
    );
    server
      .close()
      .then(() => {
        log('stopped');
        process.exit(0);
      })
      .catch((error: unknown) => {
        process.stderr.write(`assistd: error while stopping: ${String(error)}\n`);
        process.exit(1);
      });
  };
}

async function main(argv: string[]) {
  const [command, ...rest] = argv;
  if (command === 'serve') return serve(rest);
  if (command === 'worker') return serve(rest, 'worker');
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === 'version' || command === '--version' || command === '-v') {
    process.stdout.write(`assistd ${version()}\n`);
    return;
  }
  fail(`unknown command '${command}'\n${USAGE}`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) fail(`config error: ${error.message}`);
  if (error instanceof DataDirLockedError || error instanceof StorageStartError) fail(error.message);
  if (String((error as { code?: string }).code).startsWith('ERR_PARSE_ARGS')) fail(`${(error as Error).message}\n${USAGE}`);
  if ((error as { code?: string }).code === 'EADDRINUSE') fail(`cannot listen: ${(error as Error).message}`);
  fail(`failed to start: ${(error as Error).stack ?? String(error)}`);
});
