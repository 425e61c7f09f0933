import { linkSync, readFileSync, renameSync, unlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `data dir ${dataDir} is in use by another assistd process (pid ${pid}). ` +
        `Only one process may open an embedded data dir; stop it, or use DATABASE_URL to share a PostgreSQL server.`,
    );
    this.name = 'DataDirLockedError';
  }
}

const heldHere = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the data dir's lock file. It is written whole under a private name and then hard-linked into
 * place, which fails if the lock exists, so a reader never sees a half-written lock. A lock left by a dead process
 * is moved aside by rename, which only one contender can win, then taken again exclusively.
 * Returns the release function.
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lockPath = join(dataDir, 'assistd.lock');
  // A lock file naming our own pid is stale (a restarted container reuses low pids), unless this
  // very process holds it: that is tracked here.
  if (heldHere.has(lockPath)) throw new DataDirLockedError(dataDir, process.pid);
  for (let attempt = 0; attempt < 3; attempt++) {
    const privatePath = `${lockPath}.${process.pid}.tmp`;
    writeFileSync(privatePath, JSON.stringify({ pid: process.pid, host: hostname() }));
    try {
      linkSync(privatePath, lockPath);
      unlinkSync(privatePath);
      heldHere.add(lockPath);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        heldHere.delete(lockPath);
        try {
          unlinkSync(lockPath);
        } catch {
          // already gone
        }
      };
    } catch (error) {
      unlinkSync(privatePath);
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner = NaN;
    try {
      owner = Number((JSON.parse(readFileSync(lockPath, 'utf8')) as { pid?: unknown }).pid);
    } catch {
      // unreadable: treated as stale
    }
    if (Number.isInteger(owner) && owner !== process.pid && processAlive(owner)) {
      throw new DataDirLockedError(dataDir, owner);
    }
    try {
      renameSync(lockPath, `${lockPath}.stale-${process.pid}`);
      unlinkSync(`${lockPath}.stale-${process.pid}`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  throw new Error(`could not take the lock on data dir ${dataDir}`);
}
