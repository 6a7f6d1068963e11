import cluster from "node:cluster";
import createDebug from "debug";
import { limitKey, type LimitBackend } from "./limits";
import openTabScript from "./open-tab.lua";
import { DEMO_KEY_PREFIX, type RedisConnection } from "./redis";

const debug = createDebug("presence:demo");

/** How long a user's slots live in Redis after their last new connection: slots a crashed instance never gave back go with them. */
const SLOTS_TTL_MS = 24 * 60 * 60 * 1000;
/** How long a slot request may take (the cluster primary, Redis) before the connection is let through uncounted. */
const REQUEST_TIMEOUT_MS = 3000;

/**
 * A user's tab slots: one per open connection, counted once for the
 * deployment. The newest connection always gets a slot; when the user holds
 * more than the cap, the oldest lose theirs (and are disconnected), so that
 * whoever holds the slots, a stale tab or a thief, can never lock the user out.
 */
export interface TabSlots {
  /** Takes a slot for a connection that just opened; resolves with the user's connections that lost theirs, oldest first. */
  open(userId: string, connectionId: string): Promise<string[]>;
  /** Gives the connection's slot back, however it closed (repeating it changes nothing). */
  close(userId: string, connectionId: string): Promise<void>;
}

/** The slots of every user, oldest first: the decider in one process, or in the cluster primary. */
export class SlotTable {
  /** user key -> connection id -> owner (the worker that opened it), in order of arrival */
  readonly #users = new Map<string, Map<string, number>>();

  constructor(readonly cap: number) {}

  open(user: string, connectionId: string, owner = 0): string[] {
    let open = this.#users.get(user);
    if (!open) this.#users.set(user, (open = new Map()));
    if (open.has(connectionId)) return [];
    open.set(connectionId, owner);
    const evicted: string[] = [];
    for (const oldest of open.keys()) {
      if (open.size <= this.cap) break;
      open.delete(oldest);
      evicted.push(oldest);
    }
    return evicted;
  }

  close(user: string, connectionId: string): void {
    const open = this.#users.get(user);
    open?.delete(connectionId);
    if (open?.size === 0) this.#users.delete(user);
  }

  /** Drops every slot a worker held: it died, and its connections with it. */
  closeOwner(owner: number): void {
    for (const [user, open] of this.#users) {
      for (const [connectionId, holder] of open) if (holder === owner) open.delete(connectionId);
      if (open.size === 0) this.#users.delete(user);
    }
  }
}

function deadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} got no answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function createTabSlots(cap: number, backend: LimitBackend): TabSlots {
  switch (backend.kind) {
    case "memory": {
      const table = new SlotTable(cap);
      return {
        open: async (userId, connectionId) => table.open(limitKey(userId), connectionId),
        close: async (userId, connectionId) => table.close(limitKey(userId), connectionId),
      };
    }
    case "cluster":
      return primarySlots();
    case "redis":
      return redisSlots(cap, backend.client);
  }
}

// -- in the cluster primary, over IPC --

const REQUEST = "presence-demo:tab";
const REPLY = "presence-demo:tab-reply";
type TabRequest = { type: typeof REQUEST; user: string; connectionId: string } & ({ op: "open"; id: number } | { op: "close" });
type TabReply = { type: typeof REPLY; id: number; evicted: string[] };

/** In the primary (before forking): keeps every user's slots for the workers. */
export function setupTabSlotsPrimary(cap: number): void {
  const table = new SlotTable(cap);
  cluster.on("message", (worker, message: TabRequest) => {
    if (message?.type !== REQUEST) return;
    if (message.op === "close") return table.close(message.user, message.connectionId);
    const evicted = table.open(message.user, message.connectionId, worker.id);
    if (worker.isConnected()) worker.send({ type: REPLY, id: message.id, evicted } satisfies TabReply);
  });
  cluster.on("exit", (worker) => table.closeOwner(worker.id));
}

function primarySlots(): TabSlots {
  const pending = new Map<number, (evicted: string[]) => void>();
  let lastId = 0;
  process.on("message", (message: TabReply) => {
    if (message?.type !== REPLY) return;
    pending.get(message.id)?.(message.evicted);
    pending.delete(message.id);
  });
  const send = (request: TabRequest) => process.send?.(request);
  return {
    open(userId, connectionId) {
      const id = ++lastId;
      const answer = new Promise<string[]>((resolve) => pending.set(id, resolve));
      send({ type: REQUEST, op: "open", user: limitKey(userId), connectionId, id });
      return deadline(answer, "a tab slot request to the cluster primary").finally(() => pending.delete(id));
    },
    // the same channel as the open, so the primary sees them in order
    close: async (userId, connectionId) => void send({ type: REQUEST, op: "close", user: limitKey(userId), connectionId }),
  };
}

// -- in Redis --

interface TabCommands {
  presenceDemoOpenTab(key: string, connectionId: string, cap: number, ttlMs: number): Promise<string[]>;
}

function redisSlots(cap: number, client: RedisConnection): TabSlots {
  client.defineCommand("presenceDemoOpenTab", { numberOfKeys: 1, lua: openTabScript });
  const commands = client as unknown as TabCommands;
  // `{presence}:demo:tabs:<digest>`: one sorted set per user, in the store's slot
  const key = (userId: string) => `${DEMO_KEY_PREFIX}tabs:${limitKey(userId)}`;
  return {
    open: (userId, connectionId) => deadline(commands.presenceDemoOpenTab(key(userId), connectionId, cap, SLOTS_TTL_MS), "a tab slot request to Redis"),
    close: async (userId, connectionId) => {
      await deadline(client.zrem(key(userId), connectionId), "a tab slot release in Redis").catch((error: Error) =>
        debug("could not give back the tab slot of %s: %s", connectionId, error.message),
      );
    },
  };
}
