/**
 * ReadBatch (update-server/read-batch.ts): the check-ins' reads, batched. Unit tests with a
 * recording read function; the storage suite (server-storage.test.ts) runs the real batched
 * reads on SQLite and PostgreSQL.
 */
import { describe, expect, it } from 'vitest';
import { ReadBatch } from '../update-server/read-batch';

/** A read that records each batch and answers when `release()` is called (or at once). */
function recorder(hold = false) {
  const batches: number[][] = [];
  const pending: (() => void)[] = [];
  const read = async (qs: number[]) => {
    batches.push(qs);
    if (hold) await new Promise<void>((r) => pending.push(r));
    if (qs.includes(13)) throw new Error('unlucky read');
    return qs.map((q) => q * 10);
  };
  return { batches, read, release: () => pending.splice(0).forEach((r) => r()) };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('ReadBatch', () => {
  it('reads what arrived in one turn together, and answers each its own, in order', async () => {
    const r = recorder();
    const b = new ReadBatch(r.read);
    expect(await Promise.all([1, 2, 3, 2].map((q) => b.get(q)))).toEqual([10, 20, 30, 20]);
    expect(r.batches).toEqual([[1, 2, 3, 2]]);
    // A lone get waits for no one.
    expect(await b.get(7)).toBe(70);
    expect(r.batches).toEqual([[1, 2, 3, 2], [7]]);
  });

  it('holds what arrives while a read is under way for the next read (one read at a time)', async () => {
    const r = recorder(true);
    const b = new ReadBatch(r.read);
    const first = b.get(1);
    await turn();
    expect(r.batches).toEqual([[1]]);
    const later = [2, 3, 4].map((q) => b.get(q));
    await turn();
    await turn();
    expect(r.batches).toEqual([[1]]); // still under way: nothing more was read
    r.release();
    expect(await first).toBe(10);
    await turn();
    expect(r.batches).toEqual([[1], [2, 3, 4]]);
    r.release();
    expect(await Promise.all(later)).toEqual([20, 30, 40]);
  });

  it('with concurrency 2, a second read starts while the first is under way', async () => {
    const r = recorder(true);
    const b = new ReadBatch(r.read, 2);
    const a = b.get(1);
    await turn();
    const c = b.get(2);
    await turn();
    expect(r.batches).toEqual([[1], [2]]);
    r.release();
    expect(await Promise.all([a, c])).toEqual([10, 20]);
  });

  it('a failed read fails every get of its batch (no answer, fail closed), and the next batch is read', async () => {
    const r = recorder();
    const b = new ReadBatch(r.read);
    const got = await Promise.allSettled([b.get(12), b.get(13)]);
    expect(got.map((g) => g.status)).toEqual(['rejected', 'rejected']);
    expect((got[0] as PromiseRejectedResult).reason.message).toBe('unlucky read');
    expect(await b.get(14)).toBe(140);
  });

  it('a read that answers too few queries fails its batch instead of answering the wrong one', async () => {
    const b = new ReadBatch(async (qs: number[]) => qs.slice(1));
    await expect(b.get(1)).rejects.toThrow(/answered 0 of 1/);
  });

  it('splits a batch larger than max', async () => {
    const r = recorder();
    const b = new ReadBatch(r.read, 1, 3);
    expect(await Promise.all([1, 2, 3, 4, 5].map((q) => b.get(q)))).toEqual([10, 20, 30, 40, 50]);
    expect(r.batches).toEqual([[1, 2, 3], [4, 5]]);
  });
});
