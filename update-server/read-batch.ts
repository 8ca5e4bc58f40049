/**
 * Reads that many requests make at once, made together: every `get` waiting when the previous
 * read came back goes into the next one, one statement for all of them (a DataLoader without
 * its cache: each answer is read after its request arrived, nothing is kept). Under load a
 * round trip to the database carries the reads of every check-in that arrived meanwhile;
 * alone, a request waits for no one (its read starts on the next turn of the event loop).
 */
export class ReadBatch<Q, A> {
  private waiting: { q: Q; resolve: (a: A) => void; reject: (e: unknown) => void }[] = [];
  private inFlight = 0;
  private scheduled = false;

  /**
   * `read` answers every query of a batch, in order. `concurrency`: reads under way at once
   * (the next batch forms while they run); `max`: queries per read.
   */
  constructor(private readonly read: (qs: Q[]) => Promise<A[]>, private readonly concurrency = 1, private readonly max = 500) {}

  get(q: Q): Promise<A> {
    return new Promise<A>((resolve, reject) => {
      this.waiting.push({ q, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.concurrency || this.waiting.length === 0) return;
    this.scheduled = true;
    // The next turn: what arrives in this one joins the batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.inFlight >= this.concurrency || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, this.max);
    this.inFlight++;
    try {
      const answers = await this.read(batch.map((w) => w.q));
      if (answers.length !== batch.length) throw new Error(`a batched read answered ${answers.length} of ${batch.length} queries`);
      batch.forEach((w, i) => w.resolve(answers[i]));
    } catch (e) {
      // Each request fails as its own read would have (fail closed: no answer, no check-in).
      for (const w of batch) w.reject(e);
    } finally {
      this.inFlight--;
      this.schedule();
    }
  }
}
