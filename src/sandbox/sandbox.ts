import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { chown, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';

/** code_interpreter's limits and where sessions live (`assistd_settings.code_interpreter_*`). */
export interface SandboxSettings {
  /** `bubblewrap` (the default: a jail), `unsafe_local` (no isolation at all; development only) or `disabled`. */
  driver: 'bubblewrap' | 'unsafe_local' | 'disabled';
  /** The interpreter run inside the jail. */
  python: string;
  /** Wall-clock seconds a call may take (the kernel is stopped and replaced after a grace). */
  timeoutSeconds: number;
  /** CPU seconds a call may use. */
  cpuSeconds: number;
  /** Address space of the kernel and each process it starts. */
  memoryMb: number;
  /** Processes (and threads) the session's user may run. */
  maxProcesses: number;
  /** Logs a call keeps (the rest is counted and dropped). */
  maxOutputKb: number;
  /** The largest file the code may write. */
  maxFileMb: number;
  /** Size of the session's private /tmp (memory-backed). */
  tmpMb: number;
  /** A kernel unused this long is stopped; its /mnt/data stays for the next one. */
  idleTimeoutSeconds: number;
  /** Live kernels per process; the least recently used idle one is stopped to make room. */
  maxKernels: number;
  /** Where each thread's /mnt/data lives on this machine; default `<data dir>/code-sessions`. */
  sessionsDir: string | null;
}

export const SANDBOX_DEFAULTS: SandboxSettings = {
  driver: 'bubblewrap',
  python: '/usr/bin/python3',
  timeoutSeconds: 120,
  cpuSeconds: 120,
  memoryMb: 2048,
  maxProcesses: 64,
  maxOutputKb: 256,
  maxFileMb: 512,
  tmpMb: 256,
  idleTimeoutSeconds: 1800,
  maxKernels: 16,
  sessionsDir: null,
};

const KERNEL_SOURCE_PATH = fileURLToPath(new URL('../../../sandbox/kernel.py', import.meta.url));
const NOBODY = 65534;
const KILL_GRACE_MS = 5_000;
/** Entries of /etc the interpreter and its libraries read (dynamic linker, fonts, matplotlib's rc, time zone). */
const ETC_ENTRIES = ['alternatives', 'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'localtime', 'fonts', 'matplotlibrc', 'mime.types', 'python3', 'ssl/openssl.cnf'];
const TOP_LEVEL = ['bin', 'lib', 'lib32', 'lib64', 'libx32', 'sbin'];

export class SandboxUnavailable extends Error {}

/** How to start a kernel for a session directory, and whether that is a sandbox at all. */
export interface SandboxDriver {
  readonly name: string;
  readonly isolated: boolean;
  /** Null when kernels can start here; else why not, in a sentence. */
  check(): Promise<string | null>;
  command(sessionDir: string, env: Record<string, string>): { file: string; args: string[]; options: SpawnOptions };
}

const signalNames = new Map(Object.entries(osConstants.signals).map(([name, number]) => [number, name]));
const runningAsRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * CPython in bubblewrap: every namespace unshared (no network at all: only a loopback nobody
 * listens on), a cleared environment, /usr and a few /etc entries read-only, a private /proc,
 * /dev and /tmp, the session's directory at /mnt/data, uid nobody, no capabilities, no new
 * privileges (bwrap sets PR_SET_NO_NEW_PRIVS), and the limits the kernel sets on itself at start.
 * Started by root, bwrap itself runs as nobody, so the process limit counts the session's user.
 */
export class BubblewrapDriver implements SandboxDriver {
  readonly name = 'bubblewrap';
  readonly isolated = true;
  constructor(private readonly settings: SandboxSettings) {}

  command(sessionDir: string, env: Record<string, string>) {
    const args = ['--unshare-all', '--die-with-parent', '--new-session', '--clearenv', '--cap-drop', 'ALL', '--hostname', 'sandbox'];
    args.push('--ro-bind', '/usr', '/usr');
    for (const entry of TOP_LEVEL) {
      const path = `/${entry}`;
      if (!existsSync(path)) continue;
      if (lstatSync(path).isSymbolicLink()) args.push('--symlink', `usr/${entry}`, path);
      else args.push('--ro-bind', path, path);
    }
    for (const entry of ETC_ENTRIES) if (existsSync(`/etc/${entry}`)) args.push('--ro-bind', `/etc/${entry}`, `/etc/${entry}`);
    args.push('--proc', '/proc', '--dev', '/dev', '--size', String(this.settings.tmpMb * 1024 * 1024), '--tmpfs', '/tmp');
    args.push('--bind', sessionDir, '/mnt/data', '--chdir', '/mnt/data', '--uid', String(NOBODY), '--gid', String(NOBODY));
    args.push('--remount-ro', '/');
    for (const [key, value] of Object.entries({ ...env, KERNEL_REAP: '1' })) args.push('--setenv', key, value);
    args.push('--', this.settings.python, '-I', '-u', '-c', kernelSource());
    const options: SpawnOptions = { env: {} };
    if (runningAsRoot()) Object.assign(options, { uid: NOBODY, gid: NOBODY });
    return { file: 'bwrap', args, options };
  }

  async check(): Promise<string | null> {
    const probe = spawnSync('bwrap', ['--version'], { encoding: 'utf8' });
    if (probe.error) return 'bubblewrap (bwrap) is not installed; run scripts/install-sandbox.sh or install your distribution\'s bubblewrap package';
    if (!existsSync(this.settings.python)) return `${this.settings.python} does not exist (assistd_settings.code_interpreter_python)`;
    const dir = join(tmpdir(), `assistd-sandbox-check-${process.pid}`);
    await mkdir(dir, { recursive: true });
    if (runningAsRoot()) await chown(dir, NOBODY, NOBODY);
    try {
      const { file, args, options } = this.command(dir, {});
      // The kernel's own source is replaced by a one-line import check.
      args.splice(args.length - 1, 1, 'import sys; print("ok")');
      const result = spawnSync(file, args, { ...options, encoding: 'utf8', timeout: 20_000 });
      if (result.stdout?.trim() === 'ok') return null;
      const reason = (result.stderr || result.error?.message || `exit status ${result.status}`).trim().split('\n')[0];
      return `bubblewrap cannot start a sandbox here (${reason}); it needs unprivileged user namespaces (kernel.unprivileged_userns_clone=1, or in a container --security-opt seccomp=unconfined or a privileged one)`;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** Runs the kernel as a plain child process: no isolation whatsoever. Only when the config names it. */
export class UnsafeLocalDriver implements SandboxDriver {
  readonly name = 'unsafe_local';
  readonly isolated = false;
  constructor(private readonly settings: SandboxSettings) {}
  async check() {
    return existsSync(this.settings.python) ? null : `${this.settings.python} does not exist (assistd_settings.code_interpreter_python)`;
  }
  command(sessionDir: string, env: Record<string, string>) {
    return {
      file: this.settings.python,
      args: ['-I', '-u', '-c', kernelSource()],
      options: { cwd: sessionDir, env: { PATH: '/usr/bin:/bin', ...env, KERNEL_DATA_DIR: sessionDir } } satisfies SpawnOptions,
    };
  }
}

let cachedSource: string | undefined;
const kernelSource = () => (cachedSource ??= readFileSync(KERNEL_SOURCE_PATH, 'utf8'));

export interface ExecutionResult {
  /** stdout and stderr interleaved, as the code wrote them (cut at the output limit). */
  logs: string;
  /** The Python exception the call ended with (its traceback is in the logs), or the kernel's fate. */
  error: { name: string; value: string } | null;
  /** PNGs of the figures the code left open. */
  images: Buffer[];
  /** Files the call created or changed in /mnt/data, by path below it. */
  files: { path: string; hostPath: string }[];
}

interface Reply {
  nonce: string;
  error: { name: string; value: string } | null;
  images: string[];
}

/** One Python process for one thread, spoken to by the kernel protocol (see sandbox/kernel.py). */
class Kernel {
  private readonly child: ChildProcess;
  private alive = true;
  private exitReason = '';
  private call: { nonce: Buffer; logs: Buffer[]; kept: number; dropped: number; tail: Buffer; seenNonce: boolean; reply?: Reply; settle: () => void } | undefined;
  private replyBuffer = '';
  private readonly startupErrors: Buffer[] = [];
  lastUsed = Date.now();
  busy = false;
  readonly exited: Promise<void>;

  constructor(
    driver: SandboxDriver,
    readonly sessionDir: string,
    private readonly settings: SandboxSettings,
  ) {
    const env: Record<string, string> = {
      HOME: '/tmp',
      PATH: '/usr/local/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      MPLBACKEND: 'Agg',
      MPLCONFIGDIR: '/tmp/matplotlib',
      OPENBLAS_NUM_THREADS: '1',
      OMP_NUM_THREADS: '1',
      PYTHONDONTWRITEBYTECODE: '1',
      KERNEL_MEMORY_BYTES: String(settings.memoryMb * 1024 * 1024),
      KERNEL_MAX_PROCESSES: String(settings.maxProcesses),
      KERNEL_MAX_FILE_BYTES: String(settings.maxFileMb * 1024 * 1024),
    };
    const { file, args, options } = driver.command(sessionDir, env);
    this.child = spawn(file, args, { ...options, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': what the kernel wrote before it died is read first.
      this.child.once('close', (code, signal) => {
        this.alive = false;
        // bwrap reports a kernel killed by a signal as its exit status, 128 + the signal.
        const signalName = signal ?? (code !== null && code > 128 ? signalNames.get(code - 128) : undefined);
        this.exitReason = signalName ? `killed by ${signalName}` : `exited with status ${code}`;
        this.call?.settle();
        resolve();
      });
      this.child.once('error', (error) => {
        this.alive = false;
        this.exitReason = `could not start: ${error.message}`;
        this.call?.settle();
        resolve();
      });
    });
    (this.child.stdin as Writable).on('error', () => {});
    (this.child.stdout as Readable).on('data', (data: Buffer) => this.onOutput(data));
    (this.child.stderr as Readable).on('data', (data: Buffer) => {
      // Only the jail's own complaints come here (the kernel sends stderr to stdout).
      if (this.startupErrors.reduce((sum, part) => sum + part.length, 0) < 4096) this.startupErrors.push(data);
    });
    (this.child.stdio[3] as Readable).on('data', (data: Buffer) => this.onReply(data.toString('utf8')));
  }

  get isAlive() {
    return this.alive;
  }

  private onOutput(data: Buffer) {
    const call = this.call;
    if (!call || call.seenNonce) return; // output after a call ended (a leftover child process): nobody's
    // The last bytes are held back while they could be the start of the nonce.
    const window = Buffer.concat([call.tail, data]);
    const at = window.indexOf(call.nonce);
    let output: Buffer;
    if (at >= 0) {
      output = window.subarray(0, at);
      call.tail = Buffer.alloc(0);
    } else {
      const keep = Math.min(call.nonce.length - 1, window.length);
      output = window.subarray(0, window.length - keep);
      call.tail = Buffer.from(window.subarray(window.length - keep));
    }
    const room = this.settings.maxOutputKb * 1024 - call.kept;
    if (room > 0) {
      const kept = output.subarray(0, room);
      call.logs.push(Buffer.from(kept));
      call.kept += kept.length;
    }
    call.dropped += Math.max(0, output.length - Math.max(room, 0));
    if (at >= 0) {
      call.seenNonce = true;
      if (call.reply) call.settle();
    }
  }

  private onReply(text: string) {
    this.replyBuffer += text;
    for (let newline = this.replyBuffer.indexOf('\n'); newline >= 0; newline = this.replyBuffer.indexOf('\n')) {
      const line = this.replyBuffer.slice(0, newline);
      this.replyBuffer = this.replyBuffer.slice(newline + 1);
      const call = this.call;
      let reply: Reply;
      try {
        reply = JSON.parse(line) as Reply;
      } catch {
        continue;
      }
      if (!call || reply.nonce !== call.nonce.toString('ascii')) continue;
      call.reply = reply;
      if (call.seenNonce) call.settle();
    }
  }

  /** Runs `code`; never throws for what the code does: a dead kernel is an error result. */
  async execute(code: string, signal?: AbortSignal): Promise<Omit<ExecutionResult, 'files'>> {
    this.busy = true;
    this.lastUsed = Date.now();
    const nonce = `\u0000assistd-${randomBytes(12).toString('hex')}\u0000`;
    let timedOut = false;
    let aborted = false;
    const done = new Promise<void>((resolve) => {
      this.call = { nonce: Buffer.from(nonce, 'ascii'), logs: [], kept: 0, dropped: 0, tail: Buffer.alloc(0), seenNonce: false, settle: resolve };
    });
    const call = this.call!;
    // The kernel stops the code itself at the call's time; this catches code that blocks signals.
    const deadline = setTimeout(() => {
      timedOut = true;
      this.kill();
    }, this.settings.timeoutSeconds * 1000 + KILL_GRACE_MS);
    const onAbort = () => {
      aborted = true;
      this.kill();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (!this.alive) call.settle();
      else (this.child.stdin as Writable).write(`${JSON.stringify({ nonce, code, timeout: this.settings.timeoutSeconds, cpu: this.settings.cpuSeconds })}\n`);
      await done;
    } finally {
      clearTimeout(deadline);
      signal?.removeEventListener('abort', onAbort);
      this.call = undefined;
      this.busy = false;
      this.lastUsed = Date.now();
    }
    // Bytes held back as a possible nonce start were output after all when the kernel died.
    if (!call.seenNonce && call.tail.length > 0) {
      const room = Math.max(0, this.settings.maxOutputKb * 1024 - call.kept);
      call.logs.push(call.tail.subarray(0, room));
      call.dropped += Math.max(0, call.tail.length - room);
    }
    let logs = Buffer.concat(call.logs).toString('utf8');
    if (call.dropped > 0) logs += `\n[output truncated: ${call.dropped.toLocaleString('en')} more bytes]`;
    if (call.reply) return { logs, error: call.reply.error, images: call.reply.images.map((image) => Buffer.from(image, 'base64')) };
    // No reply: the kernel died in the call (a limit, a kill, a crash). Its state is gone.
    const why = timedOut
      ? `the code ran past the ${this.settings.timeoutSeconds} s a call may take and the session was restarted`
      : aborted
        ? 'the call was stopped'
        : `the Python session ended (${this.exitReason}${this.startupNote()}); variables are lost, files in /mnt/data are kept`;
    return { logs: logs === '' ? why : `${logs}\n${why}`, error: { name: timedOut ? 'TimeoutError' : 'KernelDied', value: why }, images: [] };
  }

  private startupNote() {
    const text = Buffer.concat(this.startupErrors).toString('utf8').trim();
    return text ? `: ${text.split('\n')[0]!.slice(0, 300)}` : '';
  }

  kill() {
    if (!this.alive) return;
    // bwrap's children die with it (--die-with-parent), and with them the whole pid namespace.
    this.child.kill('SIGKILL');
  }
}

/** Files below `root` (regular files, a bounded walk) by relative path, with what tells a change. */
async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, depth: number) => {
    if (depth > 6 || out.size > 5_000) return;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path, depth + 1);
      else if (entry.isFile()) {
        const info = await stat(path).catch(() => undefined);
        if (info) out.set(relative(root, path), `${info.size}:${info.mtimeMs}:${info.ino}`);
      }
    }
  };
  await walk(root, 0);
  return out;
}

/** Files to put at /mnt/data before a call: by name, read only when missing there. */
export interface InputFile {
  name: string;
  read(): Promise<Buffer>;
}

/**
 * One kernel per thread on this process: started on a thread's first call, kept between runs,
 * stopped when idle or when room is needed (least recently used first). A thread's /mnt/data is
 * a directory that outlives its kernels.
 */
export class KernelPool {
  private readonly kernels = new Map<string, Kernel>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly starting = new Map<string, Promise<void>>();

  constructor(
    readonly driver: SandboxDriver,
    private readonly settings: SandboxSettings,
    readonly sessionsDir: string,
    private readonly log: { warn(object: unknown, message?: string): void },
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(30_000, Math.max(1_000, settings.idleTimeoutSeconds * 250)));
    this.sweeper.unref();
  }

  get liveKernels() {
    return [...this.kernels.values()].filter((kernel) => kernel.isAlive).length;
  }

  /** The host directory that is the thread's /mnt data. */
  sessionDir(threadId: string) {
    return join(this.sessionsDir, createHash('sha256').update(threadId).digest('hex').slice(0, 32));
  }

  /** Runs `code` in the thread's kernel, after putting `inputs` at /mnt/data. */
  async execute(threadId: string, code: string, inputs: readonly InputFile[], signal?: AbortSignal): Promise<ExecutionResult> {
    if (!this.driver.isolated) {
      this.log.warn({ threadId, driver: this.driver.name }, 'code_interpreter: running model-written code WITHOUT a sandbox (assistd_settings.code_interpreter_sandbox: unsafe_local)');
    }
    const dir = this.sessionDir(threadId);
    await this.ensureDir(dir);
    for (const input of inputs) {
      const path = join(dir, input.name);
      if (existsSync(path)) continue;
      await writeFile(path, await input.read());
      if (runningAsRoot()) await chown(path, NOBODY, NOBODY);
    }
    const before = await snapshot(dir);
    let kernel = this.kernels.get(threadId);
    if (!kernel || !kernel.isAlive) {
      this.makeRoom();
      kernel = new Kernel(this.driver, dir, this.settings);
      this.kernels.set(threadId, kernel);
    }
    // Most recently used last: the map's order is the eviction order.
    this.kernels.delete(threadId);
    this.kernels.set(threadId, kernel);
    const result = await kernel.execute(code, signal);
    const after = await snapshot(dir);
    const files = [...after.entries()].filter(([path, mark]) => before.get(path) !== mark).map(([path]) => ({ path, hostPath: join(dir, path) }));
    return { ...result, files };
  }

  private async ensureDir(dir: string) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (runningAsRoot()) await chown(dir, NOBODY, NOBODY);
  }

  private makeRoom() {
    for (const [threadId, kernel] of this.kernels) {
      if (!kernel.isAlive) this.kernels.delete(threadId);
    }
    while (this.kernels.size >= this.settings.maxKernels) {
      const idle = [...this.kernels.entries()].find(([, kernel]) => !kernel.busy);
      if (!idle) break;
      idle[1].kill();
      this.kernels.delete(idle[0]);
    }
  }

  private sweep() {
    const cutoff = Date.now() - this.settings.idleTimeoutSeconds * 1000;
    for (const [threadId, kernel] of this.kernels) {
      if (!kernel.isAlive) this.kernels.delete(threadId);
      else if (!kernel.busy && kernel.lastUsed < cutoff) {
        kernel.kill();
        this.kernels.delete(threadId);
      }
    }
  }

  /** A thread deleted: its kernel stops and its files go. */
  async dropThread(threadId: string) {
    this.kernels.get(threadId)?.kill();
    this.kernels.delete(threadId);
    await rm(this.sessionDir(threadId), { recursive: true, force: true });
  }

  async close() {
    clearInterval(this.sweeper);
    const kernels = [...this.kernels.values()];
    this.kernels.clear();
    for (const kernel of kernels) kernel.kill();
    await Promise.all(kernels.map((kernel) => kernel.exited));
  }
}

/** Where sessions live: the configured or default directory, if the sandbox's user can reach it. */
export async function sessionsRoot(settings: SandboxSettings, dataDir: string): Promise<{ dir: string; note: string | null }> {
  const wanted = settings.sessionsDir ?? join(dataDir, 'code-sessions');
  await mkdir(wanted, { recursive: true, mode: 0o711 });
  if (!runningAsRoot() || settings.driver !== 'bubblewrap') return { dir: wanted, note: null };
  // bwrap runs as nobody: every directory above the sessions must let nobody through.
  const reachable = spawnSync('/bin/sh', ['-c', 'cd "$1"', 'sh', wanted], { uid: NOBODY, gid: NOBODY }).status === 0;
  if (reachable) return { dir: wanted, note: null };
  const fallback = join(tmpdir(), `assistd-code-sessions-${createHash('sha256').update(wanted).digest('hex').slice(0, 12)}`);
  await mkdir(fallback, { recursive: true, mode: 0o711 });
  return { dir: fallback, note: `${wanted} is not reachable by the sandbox's user (nobody); sessions are kept in ${fallback} (set assistd_settings.code_interpreter_sessions_dir)` };
}

export function createDriver(settings: SandboxSettings): SandboxDriver | null {
  if (settings.driver === 'disabled') return null;
  return settings.driver === 'unsafe_local' ? new UnsafeLocalDriver(settings) : new BubblewrapDriver(settings);
}

/** code_interpreter on this process: the kernels, or why there are none. */
export class CodeInterpreter {
  private constructor(
    readonly pool: KernelPool | null,
    /** Why code cannot run here (null when it can): the model sees it as the call's error. */
    readonly unavailable: string | null,
    /** What start-up says about the mode in force. */
    readonly description: string,
  ) {}

  static async start(settings: SandboxSettings, dataDir: string, log: { warn(object: unknown, message?: string): void }): Promise<CodeInterpreter> {
    const driver = createDriver(settings);
    if (!driver) return new CodeInterpreter(null, 'code_interpreter is disabled on this server (assistd_settings.code_interpreter_sandbox: disabled).', 'code_interpreter: disabled by the config');
    const problem = await driver.check();
    if (problem) return new CodeInterpreter(null, `code_interpreter cannot run code on this server: ${problem}.`, `code_interpreter: unavailable: ${problem}`);
    const root = await sessionsRoot(settings, dataDir);
    const pool = new KernelPool(driver, settings, root.dir, log);
    const mode = driver.isolated
      ? `Python in a bubblewrap sandbox (${settings.python}; no network; ${settings.memoryMb} MB, ${settings.cpuSeconds} s CPU and ${settings.timeoutSeconds} s a call)`
      : `WARNING: Python WITHOUT a sandbox (${settings.python}; code_interpreter_sandbox: unsafe_local): model-written code runs as this server's user`;
    return new CodeInterpreter(pool, null, `code_interpreter: ${mode}; sessions in ${root.dir}${root.note ? ` (${root.note})` : ''}`);
  }

  async close() {
    await this.pool?.close();
  }
}
