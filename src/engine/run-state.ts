import type { RunStatus } from '../api/objects.js';

/**
 * Every allowed run status change. All status writes go through `allowedFrom`, and the storage
 * layer applies them as `UPDATE … WHERE status = ANY(allowed)`, so a write that lost a race changes
 * nothing.
 */
export const RUN_TRANSITIONS: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  queued: ['in_progress', 'cancelling', 'failed', 'expired'],
  in_progress: ['requires_action', 'completed', 'incomplete', 'failed', 'cancelling', 'expired'],
  requires_action: ['queued', 'cancelling', 'expired', 'failed'],
  cancelling: ['cancelled', 'failed'],
  cancelled: [],
  failed: [],
  completed: [],
  incomplete: [],
  expired: [],
};

export const TERMINAL_STATUSES: readonly RunStatus[] = ['cancelled', 'failed', 'completed', 'incomplete', 'expired'];

export const isTerminal = (status: RunStatus) => TERMINAL_STATUSES.includes(status);

const fromCache = new Map<RunStatus, RunStatus[]>();

/** The statuses a run may be in to move to `to`. */
export function allowedFrom(to: RunStatus): readonly RunStatus[] {
  let from = fromCache.get(to);
  if (!from) {
    from = (Object.keys(RUN_TRANSITIONS) as RunStatus[]).filter((status) => RUN_TRANSITIONS[status].includes(to));
    fromCache.set(to, from);
  }
  return from;
}
