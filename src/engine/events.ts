/**
 * Events a run emits while it executes, named and shaped as the Assistants stream sends them.
 * The engine publishes them on an in-process bus; an SSE response subscribes to its run.
 */
export interface RunEvent {
  event: string;
  data: unknown;
}

export type RunEventListener = (event: RunEvent) => void;

/** Fan-out of run events to subscribers in this process, plus "this pass is over" notices. */
export class RunEventBus {
  private readonly listeners = new Map<string, Set<RunEventListener>>();
  private readonly passEnd = new Map<string, Set<() => void>>();

  subscribe(runId: string, listener: RunEventListener, onPassEnd: () => void): () => void {
    let set = this.listeners.get(runId);
    if (!set) this.listeners.set(runId, (set = new Set()));
    set.add(listener);
    let ends = this.passEnd.get(runId);
    if (!ends) this.passEnd.set(runId, (ends = new Set()));
    ends.add(onPassEnd);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(runId);
      ends.delete(onPassEnd);
      if (ends.size === 0) this.passEnd.delete(runId);
    };
  }

  hasSubscribers(runId: string): boolean {
    return this.listeners.has(runId);
  }

  publish(runId: string, event: RunEvent): void {
    const set = this.listeners.get(runId);
    if (!set) return;
    for (const listener of set) {
      try {
        listener(event);
      } catch {
        // a failing subscriber (a closed socket) must not stop the run
      }
    }
  }

  /** The execution pass ended (requires_action or a terminal status): streams close. */
  endPass(runId: string): void {
    const ends = this.passEnd.get(runId);
    if (!ends) return;
    for (const end of [...ends]) end();
  }
}
