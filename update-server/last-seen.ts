/**
 * Last-seen times of devices whose check-in changed nothing else, written together: one
 * statement for every such check-in of the last `delayMs`, instead of one write each. Reads of
 * the same storage merge what is still pending (`seen`), or flush first; `close()` flushes. A
 * process killed before a flush loses at most `delayMs` of last-seen times, never a state
 * change, a report or an offer (those are written at once).
 */
export const LAST_SEEN_DELAY_MS = 1000;

export class LastSeenBatch {
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();

  /** `write` sets each device's last_checkin to the larger of the stored one and the given. */
  constructor(private readonly write: (rows: [string, number][]) => Promise<void>, private readonly delayMs = LAST_SEEN_DELAY_MS) {}

  touch(id: string, at: number): void {
    this.pending.set(id, Math.max(this.pending.get(id) ?? 0, at));
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush().catch(() => undefined), this.delayMs);
      this.timer.unref();
    }
  }

  /** A pending last-seen time of `id`, if any. */
  seen(id: string): number | undefined {
    return this.pending.get(id);
  }

  /** Write what is pending now (after any write already under way). */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const next = this.running.then(async () => {
      if (this.pending.size === 0) return;
      const rows = [...this.pending];
      this.pending = new Map();
      try {
        await this.write(rows);
      } catch (e) {
        // The database was unreachable: keep them for the next flush (newer times win).
        for (const [id, at] of rows) this.touch(id, Math.max(at, this.pending.get(id) ?? 0));
        throw e;
      }
    });
    this.running = next.catch(() => undefined);
    return next;
  }
}
