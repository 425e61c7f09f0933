/**
 * Events a run emits while it executes, named and shaped as the Assistants stream sends them.
 * The engine publishes them on an in-process bus; an SSE response subscribes to its run.
 */
export interface RunEvent {
  event: string;
  data: unknown;
}

export type RunEventListener = (event: RunEvent) => void;

/**
 * Fan-out of run events to subscribers in this process. Each subscriber belongs to one execution
 * pass (the one its request started) and is ended when that pass ends, not an earlier one.
 */
export class RunEventBus {
  private readonly subscribers = new Map<string, Set<{ pass: number; listener: RunEventListener; onEnd: () => void }>>();
  private observer: ((runId: string, event: RunEvent) => void) | null = null;

  /** Sees every event published, streamed or not (metrics). */
  observe(observer: (runId: string, event: RunEvent) => void): void {
    this.observer = observer;
  }

  subscribe(runId: string, pass: number, listener: RunEventListener, onEnd: () => void): () => void {
    let set = this.subscribers.get(runId);
    if (!set) this.subscribers.set(runId, (set = new Set()));
    const subscriber = { pass, listener, onEnd };
    set.add(subscriber);
    return () => {
      set.delete(subscriber);
      if (set.size === 0 && this.subscribers.get(runId) === set) this.subscribers.delete(runId);
    };
  }

  hasSubscribers(runId: string): boolean {
    return this.subscribers.has(runId);
  }

  publish(runId: string, event: RunEvent): void {
    this.observer?.(runId, event);
    const set = this.subscribers.get(runId);
    if (!set) return;
    for (const subscriber of set) {
      try {
        subscriber.listener(event);
      } catch {
        // a failing subscriber (a closed socket) must not stop the run
      }
    }
  }

  /** Pass `pass` of the run ended (requires_action, a terminal status, or shutdown): its streams close. */
  endPass(runId: string, pass: number): void {
    const set = this.subscribers.get(runId);
    if (!set) return;
    for (const subscriber of [...set]) {
      if (subscriber.pass === pass) subscriber.onEnd();
    }
  }
}
