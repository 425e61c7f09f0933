/**
 * The code sandbox against hostile code: each attempt is contained, and the next call on the same
 * pool is answered. Kernels are driven directly (KernelPool), as the engine drives them; the
 * runs-level behaviour is in code-interpreter.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BubblewrapDriver, KernelPool, SANDBOX_DEFAULTS, sessionsRoot, type SandboxSettings } from '../src/sandbox/sandbox.js';
import { tempDir } from './helpers/storage.js';

const settings: SandboxSettings = { ...SANDBOX_DEFAULTS, timeoutSeconds: 3, cpuSeconds: 30, memoryMb: 1024, maxProcesses: 48, maxOutputKb: 64 };
const driver = new BubblewrapDriver(settings);
const problem = await driver.check();
const skip = problem ? `no sandbox here: ${problem}` : false;
const quiet = { warn() {} };

let pool: KernelPool;
let listener: Server;
let port = 0;
const CANARY = `canary-${process.pid}`;

before(async () => {
  if (problem) return;
  process.env.ASSISTD_TEST_SECRET = CANARY;
  const root = await sessionsRoot(settings, tempDir('sandbox'));
  pool = new KernelPool(driver, settings, root.dir, quiet);
  listener = createServer((_, response) => response.end('reachable'));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  port = (listener.address() as AddressInfo).port;
});
after(async () => {
  await pool?.close();
  listener?.close();
});

const run = (code: string, thread = 'thread_hostile') => pool.execute(thread, code, []);

/** After each attempt the same thread's kernel (or its replacement) answers at once. */
async function stillAnswers(thread = 'thread_hostile') {
  const result = await run('print(6 * 7)', thread);
  assert.equal(result.logs, '42\n');
}

describe('the sandbox contains hostile code', { skip, concurrency: false }, () => {
  test('no network: the server\'s own port and PostgreSQL\'s are unreachable', async () => {
    const result = await run(
      `import socket\nfor port in (${port}, 5432):\n    try:\n        socket.create_connection(("127.0.0.1", port), timeout=2)\n        print(port, "CONNECTED")\n    except OSError as error:\n        print(port, type(error).__name__)`,
    );
    assert.equal(result.logs, `${port} ConnectionRefusedError\n5432 ConnectionRefusedError\n`);
    await stillAnswers();
  });

  test('the server\'s environment and other processes are invisible', async () => {
    const result = await run(
      'import os\nprint(sorted(os.environ))\npids = [p for p in os.listdir("/proc") if p.isdigit()]\nprint(len(pids) <= 3, os.getuid(), os.getgid())\n' +
        'import glob\nprint(any("ASSISTD" in open(f, "rb").read().decode("latin-1") for f in glob.glob("/proc/*/environ") if os.access(f, os.R_OK)))\n' +
        'print(sorted(line.split(":")[0] + "=" + line.split()[1] for line in open("/proc/self/status") if line.startswith(("NoNewPrivs", "CapEff", "CapBnd"))))',
    );
    const [names, ids, leaked, privileges] = result.logs.trim().split('\n');
    assert.equal(privileges, "['CapBnd=0000000000000000', 'CapEff=0000000000000000', 'NoNewPrivs=1']", 'no capabilities, no new privileges');
    assert.ok(!names!.includes('ASSISTD_TEST_SECRET') && !names!.includes('DATABASE_URL'), names);
    assert.equal(ids, 'True 65534 65534', 'a pid namespace of its own; uid and gid nobody');
    assert.equal(leaked, 'False');
    assert.ok(!result.logs.includes(CANARY));
    await stillAnswers();
  });

  test('nothing outside /mnt/data and /tmp is writable', async () => {
    const result = await run(
      'import os\nfor path in ("/usr/evil", "/etc/evil", "/evil", "/proc/evil", "/mnt/evil"):\n    try:\n        open(path, "w").write("x")\n        print(path, "WRITTEN")\n    except OSError as error:\n        print(path, error.errno)\nopen("/mnt/data/ok.txt", "w").write("ok")\nopen("/tmp/ok.txt", "w").write("ok")\nprint("done")',
    );
    assert.doesNotMatch(result.logs, /WRITTEN/);
    assert.match(result.logs, /done\n$/);
    assert.deepEqual(result.files.map((file) => file.path), ['ok.txt']);
    assert.equal(existsSync('/usr/evil') || existsSync('/etc/evil') || existsSync('/evil'), false);
    await stillAnswers();
  });

  test('a fork bomb hits the process limit; what it left running is ended after the call', async () => {
    const result = await run('import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        break\nprint("bounded")');
    assert.match(result.logs, /bounded/);
    const after = await run('import os\nprint(len([p for p in os.listdir("/proc") if p.isdigit() and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]))');
    assert.ok(Number(after.logs) <= 3, `processes left: ${after.logs}`);
    await stillAnswers();
  });

  test('a memory bomb gets MemoryError; the kernel survives with its state', async () => {
    await run('kept = "still here"');
    const result = await run('blob = bytearray(8 * 1024 ** 3)');
    assert.deepEqual(result.error, { name: 'MemoryError', value: '' });
    assert.equal((await run('kept')).logs, "'still here'\n");
  });

  test('an infinite loop is stopped at the call\'s time; one that ignores the signals loses its kernel, and the next call gets a fresh one', async () => {
    const looped = await run('while True:\n    pass');
    assert.equal(looped.error?.name, 'CallTimeout');
    await stillAnswers();
    const stubborn = await run('import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass');
    assert.equal(stubborn.error?.name, 'TimeoutError');
    assert.match(stubborn.logs, /ran past the 3 s a call may take and the session was restarted/);
    await stillAnswers();
  });

  test('100 MB of output is cut at the output limit, quickly, and counted', async () => {
    const result = await run('import sys\nfor _ in range(100):\n    sys.stdout.write("y" * (1024 * 1024))');
    assert.equal(result.error, null);
    assert.ok(result.logs.startsWith('y'.repeat(1000)));
    assert.match(result.logs, /\n\[output truncated: [\d,]+ more bytes\]$/);
    assert.ok(result.logs.length < 70 * 1024);
    await stillAnswers();
  });

  test('another thread\'s /mnt/data cannot be seen or reached', async () => {
    const secret = await run('open("/mnt/data/secret.txt", "w").write("mine")', 'thread_victim');
    assert.equal(secret.error, null);
    const result = await run('import os\nprint(os.listdir("/mnt/data"), os.listdir("/mnt"), os.listdir("/tmp"))', 'thread_intruder');
    assert.equal(result.logs, "[] ['data'] []\n");
  });

  test('a kernel killed mid-call is an error for that call and a fresh kernel for the next; /mnt/data is kept', async () => {
    await run('open("/mnt/data/kept.txt", "w").write("kept")\nx = 1', 'thread_killed');
    const killed = await run('import os, signal\nprint("about to die")\nos.kill(os.getpid(), signal.SIGKILL)', 'thread_killed');
    assert.equal(killed.error?.name, 'KernelDied');
    assert.match(killed.logs, /^about to die\n.*the Python session ended \(killed by SIGKILL\)/s);
    const next = await run('import os\nprint("x" in dir(), open("/mnt/data/kept.txt").read())', 'thread_killed');
    assert.equal(next.logs, 'False kept\n');
  });
});

describe('kernel sessions', { skip }, () => {
  test('idle kernels stop after the idle timeout and the cap stops the least recently used; files survive and come back', async () => {
    const root = await sessionsRoot(settings, tempDir('sandbox-idle'));
    const small = new KernelPool(driver, { ...settings, maxKernels: 2, idleTimeoutSeconds: 1 }, root.dir, quiet);
    try {
      await small.execute('a', 'open("/mnt/data/a.txt", "w").write("a")\nx = "a"', []);
      await small.execute('b', 'x = "b"', []);
      await small.execute('c', 'x = "c"', []); // a, least recently used, is stopped
      assert.equal(small.liveKernels, 2);
      const again = await small.execute('a', 'print("x" in dir(), open("/mnt/data/a.txt").read())', []);
      assert.equal(again.logs, 'False a\n');
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.equal(small.liveKernels, 0, 'idle kernels stopped');
    } finally {
      await small.close();
    }
  });

  test('input files are put at /mnt/data once, by name; changed or new files are reported, untouched ones not', async () => {
    const root = await sessionsRoot(settings, tempDir('sandbox-inputs'));
    const inputs = new KernelPool(driver, settings, root.dir, quiet);
    try {
      let reads = 0;
      const file = { name: 'data.csv', read: async () => (reads++, Buffer.from('a,b\n1,2\n')) };
      const first = await inputs.execute('t', 'print(open("/mnt/data/data.csv").read().split()[1])', [file]);
      assert.equal(first.logs, '1,2\n');
      assert.deepEqual(first.files, []);
      const second = await inputs.execute('t', 'open("/mnt/data/data.csv", "a").write("3,4\\n")\nopen("/mnt/data/new.txt", "w").write("n")', [file]);
      assert.equal(reads, 1);
      assert.deepEqual(second.files.map((made) => made.path).sort(), ['data.csv', 'new.txt']);
      assert.equal(readFileSync(second.files.find((made) => made.path === 'new.txt')!.hostPath, 'utf8'), 'n');
      writeFileSync(join(root.dir, 'unrelated'), 'not a session');
    } finally {
      await inputs.close();
    }
  });
});
