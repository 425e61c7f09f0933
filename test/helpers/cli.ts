/**
 * The real CLI (`dist/src/cli.js`) in a child process: spawn it, read its output as it comes,
 * wait for a line, stop it, and describe what it printed when something goes wrong.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './storage.js';

// The compiled helper lives in dist/test/helpers/, so the repo root is three levels up.
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');

/** How long a wait on the process (a line of output, its exit) lasts unless told otherwise. */
export const WAIT_MS = 30_000;

/**
 * The `listening on` banner line, e.g. `listening on 0.0.0.0 port 4000 (every network interface); from this
 * machine: http://127.0.0.1:4000`: [1] the address bound, [2] the port, [3] who can reach it, [4] the URL, [5] its host.
 */
export const LISTENING =
  /^assistd: listening on (\S+) port (\d+)(?: \(([^)]+)\))?(?::|; from this machine:) (http:\/\/(\[[^\]]+\]|[^\s:/]+):\d+)$/m;

/** The parts of a LISTENING match. */
export function listening(match: RegExpMatchArray): { url: string; shownHost: string; port: number; boundTo: string; scope: string | undefined } {
  return { url: match[4]!, shownHost: match[5]!, port: Number(match[2]), boundTo: match[1]!, scope: match[3] };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const children = new Set<CliProcess>();
const cwdDirs: string[] = [];

/** The environment the CLI runs in: the test's own, minus every variable assistd reads (and the test runner's marker). */
export function assistdEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  delete env.ASSISTD_MASTER_KEY;
  delete env.ASSISTD_DATA_DIR;
  delete env.ASSISTD_LOG_LEVEL;
  delete env.OPENAI_API_KEY;
  delete env.OPENAI_BASE_URL;
  delete env.NODE_TEST_CONTEXT;
  // Provider keys route prefixed model names by themselves: none leaks in from the machine.
  for (const name of Object.keys(env)) {
    if (/^(ANTHROPIC|GEMINI|GOOGLE|MISTRAL|AZURE|AZURE_OPENAI|AWS|OLLAMA|HOSTED_VLLM|GROQ|DEEPSEEK|OPENROUTER|TOGETHERAI|FIREWORKS|XAI|PERPLEXITY)_/.test(name)) delete env[name];
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** One `node dist/src/cli.js ...args` child. Without a `cwd` it runs in a scratch dir of its own. */
export class CliProcess {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  exited = false;
  readonly exit: Promise<Exit>;
  private readonly watchers = new Set<() => void>();

  constructor(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
    let cwd = options.cwd;
    if (cwd === undefined) {
      cwd = tempDir('cli-cwd');
      cwdDirs.push(cwd);
    }
    this.proc = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: options.env ?? assistdEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(this);
    this.proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      this.notify();
    });
    this.proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    this.exit = new Promise((resolve, reject) => {
      this.proc.on('error', reject);
      this.proc.on('close', (code, signal) => {
        this.exited = true;
        this.notify();
        resolve({ code, signal });
      });
    });
  }

  get output(): string {
    return `${this.stdout}${this.stderr}`;
  }

  private notify() {
    for (const watcher of [...this.watchers]) watcher();
  }

  /** Resolves with the first match of `pattern` in the stream; rejects if the process exits first or on timeout. */
  waitFor(pattern: RegExp, stream: 'stdout' | 'stderr' = 'stdout', timeoutMs = WAIT_MS): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this[stream].match(pattern);
        if (match) {
          done();
          resolve(match);
        } else if (this.exited) {
          done();
          reject(new Error(`assistd exited before printing ${pattern}\n${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${pattern}\n${this.describe()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.watchers.delete(check);
      };
      this.watchers.add(check);
      check();
    });
  }

  async waitExit(timeoutMs = WAIT_MS): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`assistd did not exit\n${this.describe()}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exit, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  describe(): string {
    return `--- stdout ---\n${this.stdout}--- stderr ---\n${this.stderr}`;
  }

  /** Sends `signal` (unless it has exited already) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = WAIT_MS): Promise<Exit> {
    if (this.exited) return this.exit;
    this.proc.kill(signal);
    return this.waitExit(timeoutMs);
  }
}

/** For an `after` hook: SIGKILL every child still running, wait (bounded) for each to go, remove the scratch cwds. */
export async function cleanUpCliProcesses(timeoutMs = WAIT_MS): Promise<void> {
  for (const child of children) {
    if (!child.exited) child.proc.kill('SIGKILL');
  }
  await Promise.all([...children].map((child) => child.waitExit(timeoutMs).catch(() => {})));
  for (const dir of cwdDirs) rmSync(dir, { recursive: true, force: true });
}
