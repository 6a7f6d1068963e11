import { createHash } from "node:crypto";

/**
 * Every key of one bucket of a deployment: `{tag}:...`, where the tag is
 * the prefix itself for a deployment of one bucket and `prefix:<bucket>-<n>`
 * otherwise (see {@link bucketTags}). The braces make it the Redis Cluster
 * hash tag, so every key of a bucket lands in one slot and every script runs
 * unchanged on a cluster. User ids are never part of a key name: they are
 * hash fields and script arguments only. Process ids are generated here; a
 * room's key carries the SHA-1 of its name, never the name itself (each
 * bucket holds its own users' share of a room).
 */
export interface PresenceKeys {
  /** zset: process id -> lease expiry (ms, Redis clock) */
  processes: string;
  /** hash: process id -> "cursor|claim expiry|cleaner id", for cleanups in progress (the cursor is a hint) */
  cleanups: string;
  /** string: the last id given to an outbox entry */
  outboxIds: string;
  /** string: the bucket's version counter, the decider's order of every transition of its users (scripts/includes/version.lua) */
  version: string;
  /**
   * hash, after a data loss: who was announced online before it (see
   * `knownField` in encoding.ts), as the recovering processes had counted;
   * a leave is announced by whoever deletes the field
   */
  known: string;
  /** hash: user id -> open connections across the deployment */
  users: string;
  /** hash: user id -> info JSON, while the user is online */
  info: string;
  /**
   * hash per process: `p` (its pages of slots, see `slots`) and `n` (its
   * connections)
   */
  connections(processId: string): string;
  /** the name of a process's pages of slots: page n is the hash `<this>:<n>`, slot % 128 -> user id (slots.ts) */
  slots(processId: string): string;
  /** hash per process: pack(slot, room) -> user id (see encoding.ts) */
  memberships(processId: string): string;
  /** hash per process: `seq` (its last batch applied) and `reply` (that batch's results) */
  record(processId: string): string;
  /** list per process (as a cleaner): the leaves its cleanups found, until announced; moved to its own cleaner's when it dies */
  outbox(processId: string): string;
  /** hash per room: user id -> connections in the room */
  room(room: string): string;
}

/** The keys of the bucket whose hash tag is `tag` (the prefix itself for the first bucket of one). */
export function presenceKeys(tag: string): PresenceKeys {
  if (tag.length === 0 || /[{}]/.test(tag)) {
    throw new TypeError(`the key prefix must be non-empty and free of braces, got ${JSON.stringify(tag)}`);
  }
  tag = `{${tag}}`;
  return {
    processes: `${tag}:processes`,
    cleanups: `${tag}:cleanups`,
    outboxIds: `${tag}:outbox-ids`,
    version: `${tag}:version`,
    known: `${tag}:known`,
    users: `${tag}:users`,
    info: `${tag}:info`,
    connections: (processId) => `${tag}:connections:${processId}`,
    slots: (processId) => `${tag}:slots:${processId}`,
    memberships: (processId) => `${tag}:memberships:${processId}`,
    record: (processId) => `${tag}:process:${processId}`,
    outbox: (processId) => `${tag}:outbox:${processId}`,
    room: (room) => `${tag}:room:${createHash("sha1").update(room, "utf8").digest("hex")}`,
  };
}

/** Redis Cluster's slot of a hash tag's content: CRC16 (XMODEM) of its UTF-8 bytes, mod 16384. */
export function slotOf(tag: string): number {
  let crc = 0;
  for (const byte of Buffer.from(tag, "utf8")) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/**
 * The hash tags of a deployment's `buckets`: the prefix itself for one
 * (the layout of a deployment before buckets, so its data stays readable);
 * otherwise `prefix:<b>-<n>` for bucket b, with the smallest n that puts it
 * in the b-th of `buckets` equal ranges of the 16384 slots. A Redis Cluster
 * whose masters hold equal slot ranges (what `redis-cli --cluster create`
 * makes) so gets the buckets evenly, whatever the prefix.
 */
export function bucketTags(prefix: string, buckets: number): string[] {
  if (buckets === 1) return [prefix];
  const tags: string[] = [];
  for (let b = 0; b < buckets; b++) {
    // rounded up, as `redis-cli --cluster create` rounds its masters' ranges: bucket b of 3 (or 6) is on master b (or b/2)
    const [low, high] = [Math.ceil((b * 16384) / buckets), Math.ceil(((b + 1) * 16384) / buckets)];
    for (let n = 0; ; n++) {
      const tag = `${prefix}:${b}-${n}`;
      const slot = slotOf(tag);
      if (slot >= low && slot < high) {
        tags.push(tag);
        break;
      }
    }
  }
  return tags;
}

/** The bucket of a user: FNV-1a (32 bits) of the id's UTF-8 bytes, mod `buckets`. Part of the data layout: it never changes. */
export function bucketOf(userId: string, buckets: number): number {
  if (buckets === 1) return 0;
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(userId, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash % buckets;
}

/**
 * The data layout this version writes, kept with the number of buckets in
 * `{prefix}:layout` as "<buckets> v<layout>" (layout 1, of 0.1, wrote the
 * number alone): 2 names connections by slots on pages (slots.ts).
 */
export const DATA_LAYOUT = 2;

/** The value of `{prefix}:layout` for a deployment of `buckets`, and its inverse (undefined for a value no version wrote). */
export const layoutValue = (buckets: number) => `${buckets} v${DATA_LAYOUT}`;
export function parseLayout(value: string): { buckets: number; layout: number } | undefined {
  const match = /^(\d+)(?: v(\d+))?$/.exec(value);
  return match ? { buckets: Number(match[1]), layout: match[2] === undefined ? 1 : Number(match[2]) } : undefined;
}
