import { DEFAULT_MAX_ROOM_BYTES, DEFAULT_MAX_USER_ID_BYTES, DEFAULT_MAX_USER_INFO_BYTES, InvalidOptionError, assertKnownOptions } from "@presence/core";
import type { RedisClient } from "./client";

export interface RedisStoreOptions {
  /**
   * An ioredis client (`Redis` or `Cluster`, ioredis 5 or 6) or a node-redis
   * client (`createClient()`, redis 4, 5 or 6). The store works on its own
   * duplicate of it, so your client's settings and state are left alone.
   */
  redis: RedisClient;
  /**
   * Every key of the deployment starts with `{prefix}:` (the braces are the
   * Redis Cluster hash tag). Stores that share a prefix form one deployment.
   * @default "presence"
   */
  prefix?: string;
  /**
   * How many buckets the users are spread over: each is one hash tag, so on
   * a Redis Cluster each lands in its own slot, and the buckets spread
   * evenly over the masters (see `bucketTags`). Every per-user decision
   * stays inside its user's bucket. Every store of a deployment must use the
   * same number: a store that finds another number in Redis refuses to
   * write (`BucketLayoutError`). 1 keeps every key under `{prefix}`, the
   * layout of earlier versions; on a Redis Cluster of N masters, use a
   * small multiple of N (12 suits 1, 2, 3, 4, 6 or 12 masters): each bucket
   * batches its own writes, so many buckets make smaller batches.
   * @default 1
   */
  buckets?: number;
  /**
   * How often this process renews its lease and looks for dead processes, in ms.
   * @default 5000
   */
  heartbeatMs?: number;
  /**
   * A process whose lease was not renewed for this long is dead: the others
   * remove its connections and announce the users this leaves offline.
   * Must be longer than `heartbeatMs`.
   * @default 10000
   */
  leaseTimeoutMs?: number;
  /**
   * How long, in ms, the connections of a store that closes stay counted
   * when another process is alive: the survivors then remove them (announcing
   * once what that leaves offline), so a user who is back on another process
   * within it, as in a rolling deploy, is never announced leaving. The
   * default is the binding's leave grace; 0 removes them at once, as does
   * the last process of a deployment.
   * @default 2000
   */
  leaveGraceMs?: number;
  /**
   * At most this many connections (in whole pages of 128, at least one
   * page) or room memberships removed per cleanup script call: bounds how
   * long any one call holds Redis when a process with many connections dies.
   * @default 500
   */
  cleanupChunkSize?: number;
  /**
   * Most operations sent in one script call; calls made while one is in
   * flight are coalesced up to this size.
   * @default 1000
   */
  maxBatchSize?: number;
  /**
   * How long any call waits for Redis before failing with
   * `StoreUnavailableError`, in ms (a timer of the store's own: it holds on
   * a Redis Cluster whose offline queue has none).
   * @default 5000
   */
  commandTimeoutMs?: number;
  /**
   * The longest accepted user id, in UTF-8 bytes.
   * @default 256
   */
  maxUserIdBytes?: number;
  /**
   * The longest accepted room name, in UTF-8 bytes.
   * @default 256
   */
  maxRoomBytes?: number;
  /**
   * The largest accepted user info, in UTF-8 bytes of JSON.
   * @default 1024
   */
  maxUserInfoBytes?: number;
}

export type ResolvedOptions = Required<RedisStoreOptions>;

const OWNER = "RedisStore";

/** Each bucket holds a lease, heartbeats and a cleaner of every process: a few hundred is already far past what a cluster's masters can use. */
export const MAX_BUCKETS = 1024;

const DEFAULTS = {
  prefix: "presence",
  buckets: 1,
  heartbeatMs: 5000,
  leaseTimeoutMs: 10_000,
  leaveGraceMs: 2000,
  cleanupChunkSize: 500,
  maxBatchSize: 1000,
  commandTimeoutMs: 5000,
  maxUserIdBytes: DEFAULT_MAX_USER_ID_BYTES,
  maxRoomBytes: DEFAULT_MAX_ROOM_BYTES,
  maxUserInfoBytes: DEFAULT_MAX_USER_INFO_BYTES,
} satisfies Omit<ResolvedOptions, "redis">;

/** Every option's name: anything else is a typo, refused with the closest name. */
export const OPTION_NAMES = ["redis", ...Object.keys(DEFAULTS)] as const;

type NumericOption = Exclude<keyof typeof DEFAULTS, "prefix">;

function positiveInteger(options: Partial<RedisStoreOptions>, name: NumericOption, min = 1): number {
  const value = options[name];
  if (value === undefined) return DEFAULTS[name];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(OWNER, name, `must be ${min === 1 ? "a positive integer" : `an integer of at least ${min}`}, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

/**
 * Merges the defaults once and checks every option: an unknown name (with
 * the closest known one suggested) or a bad value throws core's
 * `InvalidOptionError` naming the option.
 */
export function resolveOptions(options: RedisStoreOptions): ResolvedOptions {
  if (options === null || typeof options !== "object") throw new InvalidOptionError(OWNER, "options", `must be an object, got ${options === null ? "null" : typeof options}`);
  assertKnownOptions(OWNER, options, OPTION_NAMES);
  const prefix = options.prefix ?? DEFAULTS.prefix;
  if (typeof prefix !== "string" || prefix.length === 0 || /[{}]/.test(prefix)) {
    throw new InvalidOptionError(OWNER, "prefix", `must be a non-empty string free of braces, got ${JSON.stringify(prefix)}`);
  }
  const resolved: ResolvedOptions = {
    redis: options.redis,
    prefix,
    buckets: positiveInteger(options, "buckets"),
    heartbeatMs: positiveInteger(options, "heartbeatMs"),
    leaseTimeoutMs: positiveInteger(options, "leaseTimeoutMs"),
    leaveGraceMs: positiveInteger(options, "leaveGraceMs", 0),
    cleanupChunkSize: positiveInteger(options, "cleanupChunkSize"),
    maxBatchSize: positiveInteger(options, "maxBatchSize"),
    commandTimeoutMs: positiveInteger(options, "commandTimeoutMs"),
    maxUserIdBytes: positiveInteger(options, "maxUserIdBytes"),
    maxRoomBytes: positiveInteger(options, "maxRoomBytes"),
    maxUserInfoBytes: positiveInteger(options, "maxUserInfoBytes"),
  };
  if (resolved.buckets > MAX_BUCKETS) throw new InvalidOptionError(OWNER, "buckets", `must be at most ${MAX_BUCKETS}, got ${resolved.buckets}`);
  if (resolved.leaseTimeoutMs <= resolved.heartbeatMs) {
    throw new InvalidOptionError(OWNER, "leaseTimeoutMs", `(${resolved.leaseTimeoutMs}) must be longer than heartbeatMs (${resolved.heartbeatMs})`);
  }
  return resolved;
}
