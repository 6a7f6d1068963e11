/** Fields per page of a process's connections: under Redis's `hash-max-listpack-entries` (128 by default), so every page stays a listpack. */
export const SLOTS_PER_PAGE = 128;

/** The page and the field of a slot in a process's connections (includes/slots.lua writes the same). */
export function slotAddress(slot: number): { page: number; field: string } {
  return { page: Math.floor(slot / SLOTS_PER_PAGE), field: String(slot % SLOTS_PER_PAGE) };
}

/**
 * Small numbers for this process's open connections, which name them in
 * Redis instead of their ids: slot s is field `s % 128` of page
 * `floor(s / 128)` of the process's slots (keys.ts), so that pages
 * stay listpacks and a connection costs Redis about 14 bytes, not 90.
 *
 * A connection keeps its slot while it is open here, under every process id
 * the store writes under (a caller's connect kept through a fence and its
 * republished twin name the same slot, so they count once). A closed
 * connection's slot is reused only once its disconnect was applied
 * (`release`): until then an operation in the queue may still name it, and
 * no other connection may hold it. Freed slots are reused lowest page first,
 * so pages stay full.
 */
export class Slots {
  readonly #slots = new Map<string, number>();
  /** Freed slots, ready for reuse: a binary min-heap, so the lowest is reused first. */
  readonly #free: number[] = [];
  #next = 0;

  /** The slot of an open connection, given on its first use. */
  take(connectionId: string): number {
    let slot = this.#slots.get(connectionId);
    if (slot === undefined) {
      slot = this.#free.length > 0 ? this.#popLowest() : this.#next++;
      this.#slots.set(connectionId, slot);
    }
    return slot;
  }

  /** The slot of a connection open here, if it has one. */
  of(connectionId: string): number | undefined {
    return this.#slots.get(connectionId);
  }

  /** A connection closes: its slot stays held until {@link release} (its disconnect still names it). */
  close(connectionId: string): number | undefined {
    const slot = this.#slots.get(connectionId);
    this.#slots.delete(connectionId);
    return slot;
  }

  /** The disconnect that named `slot` was applied: the slot is free for another connection. */
  release(slot: number): void {
    const heap = this.#free;
    heap.push(slot);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! <= heap[i]!) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  /** How many slots are held: open connections and disconnects not yet applied. */
  get held(): number {
    return this.#next - this.#free.length;
  }

  clear(): void {
    this.#slots.clear();
    this.#free.length = 0;
    this.#next = 0;
  }

  #popLowest(): number {
    const heap = this.#free;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const [left, right] = [2 * i + 1, 2 * i + 2];
        let smallest = i;
        if (left < heap.length && heap[left]! < heap[smallest]!) smallest = left;
        if (right < heap.length && heap[right]! < heap[smallest]!) smallest = right;
        if (smallest === i) break;
        [heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!];
        i = smallest;
      }
    }
    return top;
  }
}
