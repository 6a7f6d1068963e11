export { presenceKeys, type PresenceKeys } from "./keys";
export { FencedError, InvalidOptionError } from "./errors";
export type { RedisStoreOptions } from "./options";
export { RedisStore, createRedisStore } from "./redis-store";
