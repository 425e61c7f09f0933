import { linkSync, readFileSync, statSync, unlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
    readonly host?: string,
  ) {
    super(
      `data dir ${dataDir} is in use by another assistd process (pid ${pid}${host ? ` on host ${host}` : ''}). ` +
        `Only one process may open an embedded data dir; stop it, or use DATABASE_URL to share a PostgreSQL server.` +
        (host ? ` If that host is gone, delete ${dataDir}/assistd.lock.` : ''),
    );
    this.name = 'DataDirLockedError';
  }
}

const heldHere = new Set<string>();
const TAKEOVER_STALE_MS = 10_000;

function readOwner(lockPath: string): { pid: number; host: string } | undefined {
  try {
    const content = JSON.parse(readFileSync(lockPath, 'utf8')) as { pid?: unknown; host?: unknown };
    const pid = Number(content.pid);
    if (!Number.isInteger(pid)) return undefined;
    return { pid, host: typeof content.host === 'string' ? content.host : hostname() };
  } catch {
    return undefined; // unreadable or gone: treated as stale
  }
}

/**
 * Removes a dead owner's lock. Contenders serialise on a second, exclusive "takeover" file and
 * re-read the owner inside it, so a lock another contender has just taken is never removed as stale.
 */
function removeStaleLock(dataDir: string, lockPath: string, staleOwner: { pid: number } | undefined) {
  const takeoverPath = `${lockPath}.takeover`;
  const privatePath = `${takeoverPath}.${process.pid}.tmp`;
  writeFileSync(privatePath, String(process.pid));
  try {
    linkSync(privatePath, takeoverPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // A contender that died mid-takeover leaves the file behind; it is old by then.
    try {
      if (Date.now() - statSync(takeoverPath).mtimeMs > TAKEOVER_STALE_MS) unlinkSync(takeoverPath);
    } catch {
      // gone already
    }
    throw new DataDirLockedError(dataDir, staleOwner?.pid ?? 0);
  } finally {
    unlinkSync(privatePath);
  }
  try {
    if (readOwner(lockPath)?.pid === staleOwner?.pid) {
      try {
        unlinkSync(lockPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
  } finally {
    unlinkSync(takeoverPath);
  }
}

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
 * place, which fails if the lock exists, so a reader never sees a half-written lock. A lock left by a
 * dead process is removed under the takeover file, then taken again exclusively.
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
    const owner = readOwner(lockPath);
    // A lock written on another host (another container on a shared volume) cannot be judged by
    // pid from here: it is respected until removed by hand.
    if (owner !== undefined && (owner.host !== hostname() || (owner.pid !== process.pid && processAlive(owner.pid)))) {
      throw new DataDirLockedError(dataDir, owner.pid, owner.host === hostname() ? undefined : owner.host);
    }
    removeStaleLock(dataDir, lockPath, owner);
  }
  throw new Error(`could not take the lock on data dir ${dataDir}`);
}
