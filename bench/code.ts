/**
 * code_interpreter benchmark: what the sandbox costs. Drives the kernels as the engine does
 * (KernelPool, bubblewrap driver, the default limits), on this machine.
 *
 *   1. cold start   a new thread's first call (`1 + 1`): jail + interpreter + kernel start
 *   2. warm call    the same kernel again (`1 + 1`), and a small pandas computation
 *   3. imports      `import numpy, pandas` in a fresh kernel, less the cold start
 *   4. idle memory  kernels started and left idle (plain, and with numpy+pandas imported):
 *                   the growth of the machine's used memory (MemAvailable) per kernel, and kernels per GB
 *
 * It prints figures; it never judges them. Exit code 1 only when something failed.
 *
 *   npm run bench:code
 *
 * Environment: BENCH_CODE_COLD (30 cold starts), BENCH_CODE_WARM (300 warm calls), BENCH_CODE_IDLE (20 idle kernels).
 */
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BubblewrapDriver, KernelPool, SANDBOX_DEFAULTS, sessionsRoot } from '../src/sandbox/sandbox.js';
import { envPositive, machine, percentile, progress, sourceRevision, table } from './lib.js';

const COLD = envPositive('BENCH_CODE_COLD', 30, true);
const WARM = envPositive('BENCH_CODE_WARM', 300, true);
const IDLE = envPositive('BENCH_CODE_IDLE', 20, true);
let failures = 0;

const settings = { ...SANDBOX_DEFAULTS, maxKernels: Math.max(IDLE, 4) + 2 };
const driver = new BubblewrapDriver(settings);
const problem = await driver.check();
if (problem) {
  process.stderr.write(`bench:code: no sandbox here: ${problem}\n`);
  process.exit(1);
}
const dataDir = join(tmpdir(), `assistd-bench-code-${process.pid}`);
const root = await sessionsRoot(settings, dataDir);
const quiet = { warn() {} };

async function timed(pool: KernelPool, thread: string, code: string, expect?: string): Promise<number> {
  const started = performance.now();
  const result = await pool.execute(thread, code, []);
  const ms = performance.now() - started;
  if (result.error || (expect !== undefined && result.logs !== expect)) {
    failures++;
    progress(`unexpected result for ${JSON.stringify(code)}: ${JSON.stringify(result.logs).slice(0, 200)}`);
  }
  return ms;
}

const availableKb = () => Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
const rows: string[][] = [];
const quantile = (values: number[], q: number) => percentile(values, q) ?? Number.NaN;
const summary = (name: string, values: number[]) => rows.push([name, String(values.length), quantile(values, 0.5).toFixed(1), quantile(values, 0.99).toFixed(1)]);
const memoryRows: string[][] = [];

try {
  const pool = new KernelPool(driver, settings, root.dir, quiet);
  try {
    progress(`${COLD} cold starts`);
    const cold: number[] = [];
    for (let index = 0; index < COLD; index++) {
      cold.push(await timed(pool, `cold-${index}`, '1 + 1', '2\n'));
      await pool.dropThread(`cold-${index}`);
    }
    summary('cold start (new thread, `1 + 1`)', cold);

    progress(`${WARM} warm calls`);
    await timed(pool, 'warm', 'import pandas as pd\nframe = pd.DataFrame({"x": range(1000)})');
    const warm: number[] = [];
    for (let index = 0; index < WARM; index++) warm.push(await timed(pool, 'warm', '1 + 1', '2\n'));
    summary('warm call (`1 + 1`)', warm);
    const pandas: number[] = [];
    for (let index = 0; index < Math.min(WARM, 100); index++) pandas.push(await timed(pool, 'warm', 'frame.x.sum()', '499500\n'));
    summary('warm call (pandas sum of 1,000 rows)', pandas);

    progress(`${COLD} fresh kernels importing numpy and pandas`);
    const imports: number[] = [];
    for (let index = 0; index < COLD; index++) {
      imports.push(await timed(pool, `import-${index}`, 'import numpy, pandas'));
      await pool.dropThread(`import-${index}`);
    }
    const coldMedian = quantile(cold, 0.5);
    summary('cold start + import numpy, pandas', imports);
    rows.push(['import numpy, pandas alone (p50 less cold p50)', '-', (quantile(imports, 0.5) - coldMedian).toFixed(1), '-']);
    await pool.dropThread('warm');
  } finally {
    await pool.close();
  }

  for (const [label, code] of [
    ['idle kernel (nothing imported)', '1'],
    ['idle kernel (numpy + pandas imported)', 'import numpy, pandas'],
  ] as const) {
    progress(`${IDLE} kernels: ${label}`);
    const idlePool = new KernelPool(driver, settings, root.dir, quiet);
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const before = availableKb();
      for (let index = 0; index < IDLE; index++) await timed(idlePool, `idle-${index}`, code);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const perKernelMb = (before - availableKb()) / 1024 / IDLE;
      memoryRows.push([label, String(IDLE), perKernelMb.toFixed(1), perKernelMb > 0 ? (1024 / perKernelMb).toFixed(0) : '-']);
    } finally {
      await idlePool.close();
    }
  }
} catch (error) {
  failures++;
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
}
rmSync(dataDir, { recursive: true, force: true });

const { node, platform, cpus, cpuModel } = machine();
const out: string[] = [];
out.push(`bench:code  source ${sourceRevision()}  node ${node} ${platform}, ${cpus} cpus (${cpuModel})`);
out.push(`sandbox: bubblewrap, ${settings.python}, limits: ${settings.memoryMb} MB address space, ${settings.maxProcesses} processes, ${settings.timeoutSeconds} s a call`);
out.push('');
out.push('1-3. latency in ms (from the call to its result in the server process)');
out.push(table(['call', 'n', 'p50', 'p99'], rows));
out.push('');
out.push('4. memory of idle kernels (growth of used memory, MemAvailable, per kernel)');
out.push(table(['kernels', 'n', 'MB each', 'per GB'], memoryRows));
out.push('');
out.push(failures === 0 ? 'no errors' : `${failures} error(s)`);
process.stdout.write(`${out.join('\n')}\n`);
process.exit(failures === 0 ? 0 : 1);
