/**
 * The sync protocol between `@presence/socketio` (the server) and
 * `@presence/client`, defined once. The server imports it from
 * `@presence/core/protocol`; the client bundles it at build time, so that
 * the client has no run-time dependency.
 *
 * Order comes from the store that decided each change, never from a clock:
 * the server's node drops a change older, by its decider's version, than the
 * last one it delivered for that user, and numbers the rest in the order it
 * delivers them (the `version` of states, diffs and counts is that number).
 * A client applies a change to a user only when its version is newer than
 * what it holds for that user, so duplicates and late frames are harmless. A
 * state is as of at least its `version`: every change with a version at most
 * that is in it.
 */

/** What a user shows others while online: a plain JSON object. */
export type ProtocolUserInfo = { [key: string]: unknown };

/** The protocol's version: a subscribe of another version is refused with the reason `"protocol-version"`. */
export const PROTOCOL_VERSION = 6;

/**
 * client -> server, with an ack: `(request: SubscribeRequest, ack: (reply: SubscribeReply) => void)`,
 * or for several scopes at once `(request: SubscribeBatch, ack: (replies: SubscribeReply[] | SubscribeReply) => void)`
 * (since protocol 6: the views a client makes in one turn subscribe in one packet, answered in one).
 */
export const SUBSCRIBE = "presence:subscribe";
/** client -> server, with an ack: `(request: UnsubscribeRequest, ack: (reply: SubscribeReply) => void)`. */
export const UNSUBSCRIBE = "presence:unsubscribe";
/** client -> server, with an ack: `(request: UpdateRequest, ack: (reply: SubscribeReply) => void)`: the socket's user sets their own info. */
export const UPDATE = "presence:update";
/**
 * server -> the subscribing socket only: one page of a scope's state, a
 * {@link StateFrame} packed ({@link PackedState}). A state's last page comes
 * in the subscribe's ack instead when it is small and versioned (since
 * protocol 5: one packet per subscribe, not two). The two frequent frames
 * have short names: a client receives one per tick.
 */
export const STATE = "p:s";
/**
 * server -> each subscriber, once per tick: `PackedDiff[]`, the frames of every
 * scope it follows that changed ({@link DiffFrame}s packed, see
 * {@link packDiff}); a large frame may come alone, as its own packet. Since
 * protocol 4 packed; protocol 3 sent the frames as objects, under
 * "presence:diff", and protocol 2 one frame per packet.
 */
export const DIFF = "p:d";
/** server -> subscribers: read the state again, {@link ResyncFrame}. */
export const RESYNC = "presence:resync";

/** What a client follows: every online user, a room's users, a list of users, or the count alone. */
export type SyncScope =
  | { type: "all" }
  | { type: "room"; room: string }
  | { type: "users"; userIds: string[] }
  | { type: "count" };

export interface SubscribeRequest {
  /** {@link PROTOCOL_VERSION}. */
  v: number;
  scope: SyncScope;
  /** The client's number for this request, unique per socket: echoed in the state frames it causes. */
  request: number;
}

/**
 * Several subscribes in one request, each as a {@link SubscribeRequest}
 * without `v`: answered with one reply per subscribe, in order (each
 * refused alone, past the server's `maxSubscriptions` too), or with one
 * refusal for all (an empty batch, another protocol version, or more
 * requests than the socket's rate allows: a batch costs one per subscribe).
 */
export interface SubscribeBatch {
  /** {@link PROTOCOL_VERSION}. */
  v: number;
  batch: Array<{ scope: SyncScope; request: number }>;
}

export interface UnsubscribeRequest {
  v: number;
  scope: SyncScope;
  request: number;
}

export interface UpdateRequest {
  v: number;
  info: ProtocolUserInfo;
}

/** Why a request was refused. */
export type SyncErrorReason =
  | "malformed"
  | "protocol-version"
  | "forbidden"
  | "too-many-user-ids"
  | "too-many-subscriptions"
  | "rate-limited"
  | "rooms-disabled"
  | "unavailable";

export type SubscribeReply =
  /** `state`: the last page of the state this subscribe reads, when it comes in the ack (see {@link STATE}). */
  | { ok: true; state?: PackedState }
  | { ok: false; error: { code: string; reason: SyncErrorReason; message: string } };

/** One user of a state: `[userId]`, or `[userId, info]` when the user has info. */
export type StateEntry = [userId: string, info?: ProtocolUserInfo];

/** One page of a scope's state, sent to the subscribing socket alone; the last page has `done: true`. */
export interface StateFrame {
  /** The scope's key ({@link scopeKey}). */
  key: string;
  /** The request this state answers (the client's number). */
  request: number;
  /**
   * The state is as of at least this version: every change versioned at most
   * this is in it. `null` when the store does not version its changes
   * (cluster-query): the state then replaces the view whole.
   */
  version: number | null;
  users?: StateEntry[];
  /** For the count scope. */
  count?: number;
  done: boolean;
}

/**
 * One user's change: `[userId, version]` for a leave, `[userId, version, info?]`
 * for a join or an info update. `version` is `null` when the store does not
 * version its changes: such a change is applied in the order it arrives.
 */
export type DiffEntry = [userId: string, version: number | null, info?: ProtocolUserInfo];

/** The changes of one tick for one scope, coalesced per user (the newest change of each). */
export interface DiffFrame {
  /** `"all"`, `"users"`, `"room:<room>"` or `"count"`. */
  key: string;
  joins?: DiffEntry[];
  leaves?: DiffEntry[];
  updates?: DiffEntry[];
  /** For the count scope: the count, as of at least `version`. */
  count?: number;
  version?: number | null;
}

/** Asks subscribers to read their state again: all of them, or those of one scope key. */
export interface ResyncFrame {
  key?: string;
}

/** The key of a scope, as frames carry it. */
export const scopeKey = (scope: SyncScope): string => (scope.type === "room" ? `room:${scope.room}` : scope.type);

/**
 * The wire form of frames, since protocol 4: arrays instead of objects, and
 * each change's version as an offset from the frame's smallest, so that a
 * frame costs little more than the ids it carries (a client receives a
 * packet per tick). A list of changes is flat, `[userId, offset, userId,
 * offset, ...]`, or `0` when empty; infos ride apart, as `[index, info, ...]`
 * where `index` counts the joins, then the updates. A store that does not
 * version leaves the base (and so every version) `null`.
 */
type PackedList = Array<string | number> | 0;
type PackedInfos = Array<number | ProtocolUserInfo>;

/**
 * A {@link DiffFrame} on the wire: `[key, version, count]` for a count;
 * `[key, base, joins?, leaves?, updates?, infos?]` otherwise, empty lists at
 * the end left out (so a count is the only frame three long ending in a number).
 */
export type PackedDiff =
  | [key: string, version: number | null, count: number]
  | [key: string, base: number | null, joins: PackedList, leaves?: PackedList, updates?: PackedList, infos?: PackedInfos];

/** A {@link StateFrame} on the wire: `[key, request, version, done (1 or 0), user ids or the count, infos?]`, infos as `[index, info, ...]`. */
export type PackedState = [key: string, request: number, version: number | null, done: 0 | 1, users: string[] | number, infos?: PackedInfos];

/** Drops the empty lists (and missing infos) at the end of a packed frame. */
const trimmed = <T extends unknown[]>(packed: T): T => {
  while (packed.length > 0 && (packed.at(-1) === 0 || packed.at(-1) === undefined)) packed.pop();
  return packed;
};

/** A diff frame in its wire form, {@link PackedDiff} (the server packs each frame once for all its subscribers). */
export function packDiff(frame: DiffFrame): PackedDiff {
  if (frame.count !== undefined) return [frame.key, frame.version ?? null, frame.count];
  const lists = [frame.joins ?? [], frame.leaves ?? [], frame.updates ?? []];
  let base: number | null = null;
  for (const list of lists) for (const [, version] of list) if (version !== null && (base === null || version < base)) base = version;
  const infos: PackedInfos = [];
  let index = 0;
  const pack = (list: DiffEntry[], withInfo: boolean): PackedList => {
    if (list.length === 0) return 0;
    const flat: Array<string | number> = [];
    for (const [userId, version, info] of list) {
      flat.push(userId, base === null || version === null ? 0 : version - base);
      if (withInfo && info !== undefined) infos.push(index, info);
      if (withInfo) index++;
    }
    return flat;
  };
  const [joins, leaves, updates] = [pack(lists[0]!, true), pack(lists[1]!, false), pack(lists[2]!, true)];
  const packed: PackedDiff = [frame.key, base, joins, leaves, updates, infos.length > 0 ? infos : undefined];
  return trimmed(packed) as PackedDiff;
}

const isNumber = (value: unknown): value is number => typeof value === "number";
const isString = (value: unknown): value is string => typeof value === "string";
/** Runs an unpacking that throws on anything malformed: `undefined` then (a client ignores such a frame). */
const checked = <T>(unpack: () => T): T | undefined => {
  try {
    return unpack();
  } catch {
    return undefined;
  }
};
/** Throws unless `valid`. */
const assert = (valid: boolean) => {
  if (!valid) throw 0;
};

/** The infos of a packed frame, by index. Throws when malformed. */
function unpackInfos(infos: unknown = []): Map<number, ProtocolUserInfo> {
  const byIndex = new Map<number, ProtocolUserInfo>();
  const list = infos as unknown[];
  for (let i = 0; i < list.length; i += 2) {
    const info = list[i + 1] as ProtocolUserInfo;
    assert(isNumber(list[i]) && typeof info === "object" && !!info && !Array.isArray(info));
    byIndex.set(list[i] as number, info);
  }
  return byIndex;
}

/** A packed diff frame as a {@link DiffFrame}; `undefined` when it is not one (a client ignores it). */
export function unpackDiff(packed: unknown): DiffFrame | undefined {
  return checked((): DiffFrame => {
    assert(Array.isArray(packed));
    const [key, base, ...lists] = packed as [string, number | null, ...unknown[]];
    assert(isString(key) && (base === null || isNumber(base)));
    // a count is exactly three long; a list frame ends with a list (its empty lists at the end are left out)
    if (lists.length === 1 && isNumber(lists[0])) return { key, count: lists[0], version: base };
    const infos = unpackInfos(lists[3]);
    const frame: DiffFrame = { key };
    let index = 0;
    (["joins", "leaves", "updates"] as const).forEach((name, n) => {
      const list = (lists[n] || []) as unknown[];
      assert(list.length % 2 === 0);
      const entries: DiffEntry[] = [];
      for (let i = 0; i < list.length; i += 2) {
        assert(isString(list[i]) && isNumber(list[i + 1]));
        const entry: DiffEntry = [list[i] as string, base === null ? null : base + (list[i + 1] as number)];
        const info = n === 1 ? undefined : infos.get(index++);
        if (info) entry.push(info);
        entries.push(entry);
      }
      if (entries.length > 0) frame[name] = entries;
    });
    return frame;
  });
}

/** A state frame in its wire form, {@link PackedState}. */
export function packState(frame: StateFrame): PackedState {
  const done = frame.done ? 1 : 0;
  if (frame.count !== undefined) return [frame.key, frame.request, frame.version, done, frame.count];
  const users = frame.users ?? [];
  const infos: PackedInfos = [];
  users.forEach(([, info], i) => info !== undefined && infos.push(i, info));
  const ids = users.map(([userId]) => userId);
  return infos.length > 0 ? [frame.key, frame.request, frame.version, done, ids, infos] : [frame.key, frame.request, frame.version, done, ids];
}

/** A packed state frame as a {@link StateFrame}; `undefined` when it is not one. */
export function unpackState(packed: unknown): StateFrame | undefined {
  return checked((): StateFrame => {
    assert(Array.isArray(packed));
    const [key, request, version, done, users, infos] = packed as [string, number, number | null, 0 | 1, unknown, unknown];
    assert(isString(key) && isNumber(request) && (version === null || isNumber(version)) && (done === 0 || done === 1));
    if (isNumber(users)) return { key, request, version, count: users, done: !!done };
    const byIndex = unpackInfos(infos);
    const entries = (users as unknown[]).map((userId, i): StateEntry => {
      assert(isString(userId));
      const info = byIndex.get(i);
      return info ? [userId as string, info] : [userId as string];
    });
    return { key, request, version, users: entries, done: !!done };
  });
}
