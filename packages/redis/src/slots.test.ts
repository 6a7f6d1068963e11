import { describe, expect, it } from "vitest";
import { Slots, slotAddress } from "./slots";

describe("Slots", () => {
  it("keeps a connection's slot while it is open, and reuses a slot only once its disconnect was applied, lowest first", () => {
    const slots = new Slots();
    expect([slots.take("a"), slots.take("b"), slots.take("c"), slots.take("a")]).toEqual([0, 1, 2, 0]);
    expect(slots.close("b")).toBe(1);
    expect(slots.close("a")).toBe(0);
    // both disconnects still in the queue: nobody else may hold their slots, and a reopened "a" gets a new one
    expect(slots.take("a")).toBe(3);
    expect(slots.take("d")).toBe(4);
    slots.release(1);
    slots.release(0);
    expect([slots.take("e"), slots.take("f"), slots.take("g")]).toEqual([0, 1, 5]);
    expect(slots.of("b")).toBeUndefined();
    expect(slots.held).toBe(6);
  });

  it("puts 128 slots on a page", () => {
    expect(slotAddress(0)).toEqual({ page: 0, field: "0" });
    expect(slotAddress(127)).toEqual({ page: 0, field: "127" });
    expect(slotAddress(300)).toEqual({ page: 2, field: "44" });
  });

  it("stays compact through churn: at most as many slots as connections open or closing", () => {
    const slots = new Slots();
    const open: string[] = [];
    let n = 0;
    let max = 0;
    for (let step = 0; step < 20_000; step++) {
      if (open.length < 500 || step % 3 === 0) open.push(`c${n++}`), slots.take(open.at(-1)!);
      else {
        const [id] = open.splice(step % open.length, 1);
        slots.release(slots.close(id!)!);
      }
      for (const id of open) max = Math.max(max, slots.of(id)!);
    }
    expect(max).toBeLessThan(open.length + 500);
    expect(slots.held).toBe(open.length);
  });
});
