export { presenceKeys, type PresenceKeys } from "./keys";
export { RedisStore, createRedisStore, type RedisStoreOptions } from "./redis-store";
