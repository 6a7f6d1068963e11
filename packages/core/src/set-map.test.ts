import { expect, it } from "vitest";
import { SetMap } from "./set-map";

/** A seeded generator (mulberry32): the same operations on every run. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

it("answers as a Map of Sets would, through 20,000 random adds and deletes", () => {
  const next = random(7);
  const subject = new SetMap<string>();
  const model = new Map<string, Set<string>>();
  for (let step = 0; step < 20_000; step++) {
    const key = `k${Math.floor(next() * 20)}`;
    const value = `v${Math.floor(next() * 4)}`;
    const held = model.get(key);
    if (next() < 0.55) {
      expect(subject.add(key, value), `step ${step}: add`).toBe(!held?.has(value));
      if (held) held.add(value);
      else model.set(key, new Set([value]));
    } else {
      expect(subject.delete(key, value), `step ${step}: delete`).toBe(held?.has(value) ?? false);
      held?.delete(value);
      if (held?.size === 0) model.delete(key);
    }
    expect([subject.has(key), subject.count(key), subject.values(key).sort(), subject.size], `step ${step}`).toEqual([
      model.has(key),
      model.get(key)?.size ?? 0,
      [...(model.get(key) ?? [])].sort(),
      model.size,
    ]);
  }
  expect([...subject.keys()].sort()).toEqual([...model.keys()].sort());
});

it("gives a copy of a key's values: deleting while going through them misses none", () => {
  const map = new SetMap<string>();
  for (const room of ["a", "b", "c"]) map.add("connection", room);
  const seen: string[] = [];
  for (const room of map.values("connection")) {
    seen.push(room);
    map.delete("connection", room);
  }
  expect([seen, map.has("connection")]).toEqual([["a", "b", "c"], false]);
});
