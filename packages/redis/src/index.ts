export { presenceKeys, type PresenceKeys } from "./keys";
export { FencedError, InvalidOptionError } from "./errors";
export type { NodeRedisClient, RedisClient } from "./client";
export type { RedisStoreOptions } from "./options";
export { RedisStore, createRedisStore } from "./redis-store";
