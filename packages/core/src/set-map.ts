/**
 * A map from each key to a set of strings that holds a lone string bare.
 * Most users hold one connection and most connections are in one room, and
 * a `Set` costs some 300 bytes of heap where the string alone costs nothing
 * more: at a million connections, that is hundreds of megabytes.
 */
export class SetMap<K> {
  readonly #map = new Map<K, string | Set<string>>();

  /** Adds `value` to `key`'s set; false when it was there already. */
  add(key: K, value: string): boolean {
    const held = this.#map.get(key);
    if (held === undefined) this.#map.set(key, value);
    else if (typeof held === "string") {
      if (held === value) return false;
      this.#map.set(key, new Set([held, value]));
    } else {
      if (held.has(value)) return false;
      held.add(value);
    }
    return true;
  }

  /** Takes `value` out of `key`'s set (a key left with none is gone); false when it was not there. */
  delete(key: K, value: string): boolean {
    const held = this.#map.get(key);
    if (held === undefined) return false;
    if (typeof held === "string") {
      if (held !== value) return false;
      this.#map.delete(key);
      return true;
    }
    if (!held.delete(value)) return false;
    if (held.size === 1) this.#map.set(key, held.values().next().value!);
    return true;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** How many strings `key` holds. */
  count(key: K): number {
    const held = this.#map.get(key);
    return held === undefined ? 0 : typeof held === "string" ? 1 : held.size;
  }

  /** A copy of `key`'s strings: safe to change the map while going through them. */
  values(key: K): string[] {
    const held = this.#map.get(key);
    return held === undefined ? [] : typeof held === "string" ? [held] : [...held];
  }

  keys(): IterableIterator<K> {
    return this.#map.keys();
  }

  /** How many keys hold at least one string. */
  get size(): number {
    return this.#map.size;
  }

  clear(): void {
    this.#map.clear();
  }
}
