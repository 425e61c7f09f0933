/**
 * What the benchmarks (crud.ts, runs.ts) share: settings from the environment and the command line,
 * one registry of children and clean-up tasks released on any exit path, the server child (started
 * with `node dist/src/cli.js serve`, its port read from the listening line), a fresh PostgreSQL
 * database per run, CPU and RSS accounting from /proc, and the plain-text table.
 *
 * Importing this module has no side effects beyond constants: process handlers are installed only by
 * `installCleanupHandlers`, and `getconf CLK_TCK` is asked only when CPU is first measured.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const HOST = '127.0.0.1';
export const START_TIMEOUT_MS = 120_000;
export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MASTER_KEY = `sk-bench-${randomBytes(12).toString('hex')}`;
export const AUTH = { authorization: `Bearer ${MASTER_KEY}` };

export type Backend = 'pglite' | 'postgres';

export const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

function usageError(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

// ---- settings

/** A positive number (an integer when `integer`) from the environment, or the fallback when unset or empty; exits 2 otherwise. */
export function envPositive(name: string, fallback: number, integer: boolean): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!(integer ? Number.isInteger(value) : Number.isFinite(value)) || value <= 0) {
    usageError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got '${raw}'`);
  }
  return value;
}

/** A comma-separated list of integers from 1 to `max` (`raw` is what the variable `name` holds, or its default); exits 2 otherwise. */
export function parseIntList(name: string, raw: string, max: number): number[] {
  const values = raw.split(',').map((part) => Number(part.trim()));
  if (values.some((value) => !Number.isInteger(value) || value < 1 || value > max)) {
    usageError(`${name} must list integers from 1 to ${max}, got '${raw}'`);
  }
  return values;
}

/** The backends to run from `--backend` values: PGlite always, PostgreSQL when DATABASE_URL is set; exits 2 on a bad request. */
export function selectBackends(requested: string[]): { backends: Backend[]; databaseUrl: string | undefined } {
  const databaseUrl = process.env.DATABASE_URL || undefined;
  for (const name of requested) {
    if (name !== 'pglite' && name !== 'postgres') usageError(`--backend must be pglite or postgres, got '${name}'`);
  }
  if (requested.includes('postgres') && databaseUrl === undefined) usageError('--backend postgres needs DATABASE_URL');
  const backends = (['pglite', 'postgres'] as const).filter(
    (backend) => (requested.length === 0 || requested.includes(backend)) && (backend === 'pglite' || databaseUrl !== undefined),
  );
  return { backends, databaseUrl };
}

// ---- cleanup: every child and database is registered here so any exit path releases it

const children = new Set<ChildProcess>();
export const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;

export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const task of cleanups.splice(0).reverse()) await task().catch((error: unknown) => progress(`cleanup: ${String(error)}`));
  })();
  return cleaning;
}

/** Kills the children left at exit; on SIGINT/SIGTERM runs the clean-up tasks and exits 130. */
export function installCleanupHandlers(stopping: string): void {
  process.on('exit', () => {
    for (const child of children) child.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal} received, stopping ${stopping}`);
      void cleanup().finally(() => process.exit(130));
    });
  }
}

export interface ManagedChild {
  exited(): boolean;
  /** Whether `stop` (or the clean-up) has been asked for: any other exit is unexpected. */
  stoppedOnPurpose(): boolean;
  /** SIGTERM, then SIGKILL after the stop timeout; resolves once the child has exited. */
  stop(): Promise<void>;
}

/** Registers a child: killed at exit, stopped by the clean-up. */
export function manageChild(child: ChildProcess, stopTimeoutMs: number): ManagedChild {
  children.add(child);
  let exited = false;
  let onPurpose = false;
  const exitedPromise = new Promise<void>((done) =>
    child.once('exit', () => {
      exited = true;
      children.delete(child);
      done();
    }),
  );
  const stop = async () => {
    onPurpose = true;
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
    await exitedPromise;
    clearTimeout(timer);
  };
  cleanups.push(stop);
  return { exited: () => exited, stoppedOnPurpose: () => onPurpose, stop };
}

/**
 * Forks `script` with `args` (a fake model, say) and waits for its `{type: 'ready', url}` message;
 * the URL must be on 127.0.0.1. `onUnexpectedExit` hears of an exit nobody asked for, later on.
 */
export async function forkReadyChild(
  script: string,
  args: string[],
  stopTimeoutMs: number,
  label: string,
  onUnexpectedExit: (reason: string) => void,
): Promise<{ url: string; pid: number | undefined; stop(): Promise<void> }> {
  const child = fork(script, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const managed = manageChild(child, stopTimeoutMs);
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label} did not start within 30 s`)), 30_000);
    child.once('message', (message: { type?: string; url?: string }) => {
      clearTimeout(timer);
      if (message.type === 'ready' && message.url) resolveUrl(message.url);
      else reject(new Error(`${label} sent ${JSON.stringify(message)}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${signal ?? `code ${code}`}) before it was ready`));
    });
  });
  const { hostname } = new URL(url);
  if (hostname !== HOST) throw new Error(`${label} listens on ${hostname}, expected ${HOST}`);
  child.on('exit', (code, signal) => {
    if (!managed.stoppedOnPurpose()) onUnexpectedExit(`${label} exited unexpectedly (${signal ?? `code ${code}`})`);
  });
  return { url, pid: child.pid, stop: managed.stop };
}

// ---- the server child

export interface ServerOptions {
  backend: Backend;
  /** Prefix of the temporary directory holding config.yaml (and the data dir unless `dataDir`). */
  workDirPrefix: string;
  /** Written to config.yaml (JSON is YAML). */
  config: unknown;
  /** Set for the child, after DATABASE_URL, ASSISTD_DATA_DIR, ASSISTD_MASTER_KEY and every *_API_KEY / *_API_BASE are removed. */
  env?: NodeJS.ProcessEnv;
  /** More variables to remove from the child's environment. */
  dropEnv?: RegExp;
  databaseUrl: string | undefined;
  dataDir?: string;
  /** `--cpu-prof` directory, if any, and the profile's file name. */
  cpuProfDir: string | undefined;
  cpuProfName: string;
  stopTimeoutMs: number;
  /** Each line the server writes after it listens (the start-up banner excepted). */
  onLog?(line: string): void;
  /** Called when the server exits without being stopped, after it listened. */
  onUnexpectedExit?(how: string): void;
  /** `worker` starts `assistd worker` (no HTTP: ready once it says so; `url` is empty). Default `serve`. */
  command?: 'serve' | 'worker';
  /** More arguments for the command (`--no-worker`). */
  extraArgs?: string[];
}

export interface ServerChild extends ManagedChild {
  backend: Backend;
  url: string;
  pid: number | undefined;
  /** The node arguments it was started with. */
  args: string[];
}

export async function startServer(options: ServerOptions): Promise<ServerChild> {
  const { backend } = options;
  const workDir = mkdtempSync(join(tmpdir(), options.workDirPrefix));
  cleanups.push(async () => rmSync(workDir, { recursive: true, force: true }));
  const dataDir = options.dataDir ?? join(workDir, 'data');
  const configFile = join(workDir, 'config.yaml');
  writeFileSync(configFile, JSON.stringify(options.config, null, 2)); // JSON is YAML
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  delete env.ASSISTD_DATA_DIR;
  delete env.ASSISTD_MASTER_KEY;
  // Only the configured deployment: no provider picked up from the bench's own environment.
  for (const name of Object.keys(env)) if (/_API_(KEY|BASE)$/.test(name) || options.dropEnv?.test(name)) delete env[name];
  Object.assign(env, options.env);
  if (options.databaseUrl) env.DATABASE_URL = options.databaseUrl;
  const nodeArgs: string[] = [];
  if (options.cpuProfDir) {
    const dir = resolve(options.cpuProfDir);
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${options.cpuProfName}`);
  }
  const worker = options.command === 'worker';
  const args = worker
    ? [...nodeArgs, CLI, 'worker', '--data-dir', dataDir, '--config', configFile, ...(options.extraArgs ?? [])]
    : [...nodeArgs, CLI, 'serve', '--port', '0', '--host', HOST, '--data-dir', dataDir, '--config', configFile, ...(options.extraArgs ?? [])];
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const managed = manageChild(child, options.stopTimeoutMs);

  const startup: string[] = [];
  let listening = false;
  const remember = (line: string) => {
    if (listening) {
      options.onLog?.(line);
      return;
    }
    startup.push(line);
    if (startup.length > 40) startup.shift();
  };
  createInterface({ input: child.stderr! }).on('line', remember);
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    lines.on('line', (line) => {
      if (listening && /^assistd: (storage|model): /.test(line)) return; // the start-up banner
      remember(line);
      if (worker && !listening && /^assistd: worker: /.test(line)) {
        listening = true;
        clearTimeout(timer);
        resolveUrl('');
        return;
      }
      const match = /^assistd: listening on (\S+) port (\d+)\b/.exec(line);
      if (!match || listening) return;
      listening = true;
      clearTimeout(timer);
      if (match[1] !== HOST) reject(new Error(`server listens on ${match[1]}, expected ${HOST}`));
      else resolveUrl(`http://${HOST}:${match[2]}`);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${signal ?? `code ${code}`}) before listening`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  }).catch(async (error: unknown) => {
    await managed.stop();
    throw new Error(`${(error as Error).message}\n--- server output ---\n${startup.join('\n')}`);
  });
  // Both line readers stay attached, so the pipes keep draining and a chatty server never blocks.
  child.on('exit', (code, signal) => {
    if (!managed.stoppedOnPurpose()) options.onUnexpectedExit?.(signal ?? `code ${code}`);
  });
  return { ...managed, backend, url, pid: child.pid, args };
}

// ---- PostgreSQL: one database of its own per run, dropped by the clean-up

export async function createBenchDatabase(url: string, name: string): Promise<{ url: string; version: string }> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  let version: string;
  try {
    version = (await admin.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  cleanups.push(async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => client.query(`DROP DATABASE IF EXISTS "${name}"`));
    } finally {
      await client.end();
    }
  });
  const childUrl = new URL(url);
  childUrl.pathname = `/${name}`;
  return { url: childUrl.toString(), version };
}

// ---- /proc accounting (Linux; undefined, shown as '-', elsewhere)

let clockTicksCache: number | undefined;
function clockTicks(): number {
  if (clockTicksCache === undefined) {
    clockTicksCache = 100; // the usual value, kept when getconf fails
    try {
      clockTicksCache = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      /* keep the usual 100 */
    }
  }
  return clockTicksCache;
}

/** CPU seconds a process has used (user + system), or undefined without /proc. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/** Busy CPU seconds across the whole host. */
export function hostCpuBusy(): number | undefined {
  try {
    const numbers = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = numbers.slice(0, 8).reduce((sum, value) => sum + value, 0);
    return (total - (numbers[3] ?? 0) - (numbers[4] ?? 0)) / clockTicks();
  } catch {
    return undefined;
  }
}

/** Resident memory of a process (VmRSS) in MiB. */
export function rssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU used by each process over a phase, in cores (1.0 = one core busy the whole time); call the result at the end. */
export function cpuMeter(pids: { server?: number; model?: number }) {
  const wallStart = performance.now();
  const server = processCpuSeconds(pids.server);
  const model = processCpuSeconds(pids.model);
  const gen = process.cpuUsage();
  const host = hostCpuBusy();
  return () => {
    const wall = (performance.now() - wallStart) / 1000;
    const after = (before: number | undefined, now: number | undefined) =>
      before === undefined || now === undefined || wall <= 0 ? null : (now - before) / wall;
    const genUsed = process.cpuUsage(gen);
    const serverNow = processCpuSeconds(pids.server);
    return {
      /** CPU seconds the server used over the phase. */
      serverSeconds: server === undefined || serverNow === undefined ? null : serverNow - server,
      server: after(server, serverNow),
      model: after(model, processCpuSeconds(pids.model)),
      /** This process, the load generator. */
      gen: (genUsed.user + genUsed.system) / 1e6 / wall,
      host: after(host, hostCpuBusy()),
    };
  };
}
export type Cpu = ReturnType<ReturnType<typeof cpuMeter>>;

// ---- the machine and the source

/** The commit the server was built from, marked dirty when src/ has uncommitted changes. */
export function sourceRevision(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return dirty.trim() === '' ? commit : `${commit}+dirty src`;
  } catch {
    return 'unknown';
  }
}

export function machine() {
  return {
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
  };
}

// ---- statistics and output

/** The q-quantile (nearest rank) of the values, or null when there are none. */
export function percentile(values: ArrayLike<number>, q: number): number | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** A plain-text table: the first `leftColumns` columns padded on the right, the rest (numbers) on the left. */
export function table(header: string[], rows: string[][], leftColumns = 1): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const format = (row: string[]) =>
    row.map((value, column) => (column < leftColumns ? value.padEnd(widths[column]!) : value.padStart(widths[column]!))).join('  ');
  return [format(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(format)].join('\n');
}

/**
 * Hands each block of a server-sent-events body (the text between blank lines) to `onBlock` as it
 * arrives, a block cut off by the end included; `onEnd` once the body has ended.
 */
export function readSseBlocks(response: NodeJS.ReadableStream, onBlock: (block: string) => void, onEnd: () => void): void {
  let buffer = '';
  response.on('data', (chunk: string) => {
    buffer += chunk;
    let start = 0;
    for (;;) {
      const end = buffer.indexOf('\n\n', start);
      if (end === -1) break;
      onBlock(buffer.slice(start, end));
      start = end + 2;
    }
    if (start > 0) buffer = buffer.slice(start);
  });
  response.on('end', () => {
    if (buffer.trim() !== '') onBlock(buffer);
    onEnd();
  });
}
