export { bucketOf, bucketTags, presenceKeys, type PresenceKeys } from "./keys";
export { FenceReason } from "./encoding";
export { BucketLayoutError, DataLayoutError, FencedError } from "./errors";
export type { Phase } from "./lifecycle";
export type { NodeRedisClient, RedisClient } from "./client";
export type { RedisStoreOptions } from "./options";
export { RedisStore, createRedisStore } from "./redis-store";
