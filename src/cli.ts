#!/usr/bin/env node
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.js';
import { DataDirLockedError } from './storage/lock.js';
import { startServer } from './server.js';

const USAGE = `Usage: assistd serve [--config FILE] [--port N] [--host H] [--data-dir DIR]

  --config FILE    LiteLLM-compatible YAML config (model_list, general_settings)
  --port N         port to listen on (default 4000)
  --host H         address to bind (default 0.0.0.0; 127.0.0.1 when no master key is set)
  --data-dir DIR   embedded storage directory (default ./.assistd, env ASSISTD_DATA_DIR)

Environment: ASSISTD_MASTER_KEY, DATABASE_URL, ASSISTD_DATA_DIR`;

function fail(message: string): never {
  process.stderr.write(`assistd: ${message}\n`);
  process.exit(1);
}

async function serve(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = values.port === undefined ? 4000 : /^\d{1,5}$/.test(values.port) ? Number(values.port) : NaN;
  if (!(port >= 0 && port <= 65535)) fail(`--port must be an integer from 0 to 65535, got '${values.port}'`);

  const config = loadConfig(values.config);
  const log = (line: string) => process.stdout.write(`assistd: ${line}\n`);
  const warn = (line: string) => process.stderr.write(`assistd: warning: ${line}\n`);
  if (config.ignoredKeys.length > 0) warn(`ignoring config keys assistd does not use: ${config.ignoredKeys.join(', ')}`);

  let host = values.host ?? '0.0.0.0';
  if (!config.masterKey) {
    if (values.host === undefined) host = '127.0.0.1';
    warn(
      `no master key is set (general_settings.master_key or ASSISTD_MASTER_KEY): the API is open to anyone who can reach ${host}`,
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

  const server = await startServer({ config, dataDir, port, host, logger: { level: process.env.ASSISTD_LOG_LEVEL ?? 'warn' } });
  log(`listening on ${server.url} (bound to ${host})`);
  log(`storage: ${server.storage.description}`);
  const routes = server.models.describe();
  if (routes.length === 0) log('models: none configured (no model_list, no OPENAI_API_KEY)');
  for (const route of routes) log(`model: ${route}`);
  for (const warning of server.models.warnings) warn(warning);

  let stopping = false;
  stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal} received, finishing in-flight requests`);
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
  if (stopRequested) stop(stopRequested);
}

async function main(argv: string[]) {
  const [command, ...rest] = argv;
  if (command === 'serve') return serve(rest);
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  fail(`unknown command '${command}'\n${USAGE}`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) fail(`config error: ${error.message}`);
  if (error instanceof DataDirLockedError) fail(error.message);
  if (String((error as { code?: string }).code).startsWith('ERR_PARSE_ARGS')) fail(`${(error as Error).message}\n${USAGE}`);
  if ((error as { code?: string }).code === 'EADDRINUSE') fail(`cannot listen: ${(error as Error).message}`);
  fail(`failed to start: ${(error as Error).stack ?? String(error)}`);
});
