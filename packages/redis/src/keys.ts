/**
 * Every key of a deployment: `{prefix}:...`. The braces make the prefix the
 * Redis Cluster hash tag, so every key lands in one slot and every script
 * runs unchanged on a cluster. User ids are never part of a key name: they
 * are hash fields and script arguments only. Process ids are generated here.
 */
export interface PresenceKeys {
  /** zset: process id -> lease expiry (ms, Redis clock) */
  processes: string;
  /** hash: process id -> "cursor|claim expiry|cleaner id", for cleanups in progress */
  cleanups: string;
  /** hash: user id -> open connections across the deployment */
  users: string;
  /** hash per process: connection id -> user id */
  connections(processId: string): string;
}

export function presenceKeys(prefix: string): PresenceKeys {
  if (prefix.length === 0 || /[{}]/.test(prefix)) {
    throw new TypeError(`the key prefix must be non-empty and free of braces, got ${JSON.stringify(prefix)}`);
  }
  const tag = `{${prefix}}`;
  return {
    processes: `${tag}:processes`,
    cleanups: `${tag}:cleanups`,
    users: `${tag}:users`,
    connections: (processId) => `${tag}:connections:${processId}`,
  };
}
