import { scopeKey, type DiffEntry, type DiffFrame, type StateEntry, type SyncScope } from "@presence/core/protocol";

/**
 * The rules of a client's view, as pure functions (in the spirit of Phoenix's
 * `syncState` / `syncDiff`): each takes a view and a frame and returns the
 * next view with the changes it made, never touching the view it was given.
 * The client only wires socket events to them.
 *
 * Order comes from the versions the server's node gave its changes (its
 * delivery numbers, which follow the deciding store's order per user), never
 * from the order frames arrive in: a change to a user is applied only when it is newer
 * than everything the view knows of that user, so frames may come late,
 * twice or out of order and the view still ends at the truth.
 */

/** What the view holds of a user: their info and the version of the change that set it (`null`: unversioned). */
export interface HeldUser<Info> {
  readonly info: Info | undefined;
  readonly version: number | null;
}

export interface PresenceView<Info> {
  readonly users: ReadonlyMap<string, HeldUser<Info>>;
  /** Users who left, with their leave's version: an older join or update that arrives late is dropped. */
  readonly tombstones: ReadonlyMap<string, number>;
  /**
   * Updates for users not held (yet): the user is not listed, but when their
   * older join arrives late, it is listed with this newer info.
   */
  readonly early: ReadonlyMap<string, HeldUser<Info> & { readonly version: number }>;
  /** The version of the newest state applied: every change versioned at most this is in the view already. */
  readonly floor: number;
  /** For the count scope. */
  readonly count: number;
  readonly countVersion: number;
}

/** One visible change a frame made, for the client's events. */
export type ViewChange<Info> =
  | { type: "join" | "update"; userId: string; info: Info | undefined }
  | { type: "leave"; userId: string }
  | { type: "count"; count: number };

export interface ViewResult<Info> {
  /** The same object as the view given when the frame changed nothing at all. */
  view: PresenceView<Info>;
  /** What a reader of the view would see change: empty when only bookkeeping changed. */
  changes: ViewChange<Info>[];
}

const NONE = -Infinity;
/** Tombstones and early updates kept between two states at most. */
export const MAX_TOMBSTONES = 10_000;

export const emptyView = <Info>(): PresenceView<Info> => ({
  users: new Map(),
  tombstones: new Map(),
  early: new Map(),
  floor: NONE,
  count: 0,
  countVersion: NONE,
});

/**
 * After a reconnect: the same users in view, but no version, tombstone or
 * floor kept (the server may be another process, or a store that started
 * again): the next state settles every user, and nothing flickers meanwhile.
 */
export const forgetVersions = <Info>(view: PresenceView<Info>): PresenceView<Info> => ({
  ...emptyView<Info>(),
  users: new Map([...view.users].map(([userId, { info }]) => [userId, { info, version: null }])),
  count: view.count,
});

const sameInfo = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b);

/** The view a draft writes: its maps are the base's until the first write copies them. */
interface NextView<Info> {
  users: Map<string, HeldUser<Info>>;
  tombstones: Map<string, number>;
  early: Map<string, HeldUser<Info> & { version: number }>;
  floor: number;
  count: number;
  countVersion: number;
}

/** A view being changed, with the visible changes recorded. */
class Draft<Info> {
  next: NextView<Info>;
  changes: ViewChange<Info>[] = [];
  copied = false;

  constructor(readonly base: PresenceView<Info>) {
    this.next = { ...(base as NextView<Info>) };
  }

  /** Called before any write to the maps. */
  own(): NextView<Info> {
    const { next } = this;
    if (!this.copied) {
      this.copied = true;
      next.users = new Map(next.users);
      next.tombstones = new Map(next.tombstones);
      next.early = new Map(next.early);
    }
    return next;
  }

  /** The newest version the view knows of a user (held, or left), or the floor. */
  known(userId: string): number {
    const { next } = this;
    return Math.max(next.floor, next.users.get(userId)?.version ?? NONE, next.tombstones.get(userId) ?? NONE);
  }

  set(userId: string, info: Info | undefined, version: number | null): void {
    const { users, tombstones } = this.own();
    const held = users.get(userId);
    users.set(userId, { info, version });
    tombstones.delete(userId);
    if (!held || !sameInfo(held.info, info)) this.changes.push({ type: held ? "update" : "join", userId, info });
  }

  remove(userId: string, version: number | null): void {
    const { users, tombstones } = this.own();
    if (users.delete(userId)) this.changes.push({ type: "leave", userId });
    if (version !== null) tombstones.set(userId, version);
  }

  /** Sets a user from a join (or a state's entry), unless an early update of theirs is newer. */
  join(userId: string, info: Info | undefined, version: number | null): void {
    const early = this.next.early.get(userId);
    if (early) this.own().early.delete(userId);
    if (early && (version === null || early.version > version)) this.set(userId, early.info, early.version);
    else this.set(userId, info, version);
  }

  setCount(count: number, version: number | null): void {
    const { next } = this;
    if (version !== null && version < next.countVersion) return;
    if (version !== null) next.countVersion = version;
    if (count !== next.count) this.changes.push({ type: "count", count: (next.count = count) });
  }

  /** Forgets the tombstones and early updates the floor covers: any change they would stop, the floor stops now. */
  raiseFloor(version: number): void {
    const next = this.own();
    next.floor = Math.max(next.floor, version);
    for (const [userId, left] of next.tombstones) if (left <= next.floor) next.tombstones.delete(userId);
    for (const [userId, early] of next.early) if (early.version <= next.floor) next.early.delete(userId);
  }

  done(): ViewResult<Info> {
    const { base, next } = this;
    const changed = this.copied || next.count !== base.count || next.countVersion !== base.countVersion;
    return { view: changed ? next : base, changes: this.changes };
  }
}

/**
 * Applies a whole state (every page of it, in order). With a version `S`:
 * every held user versioned at most `S` and absent from the state left; every
 * entry is set (as of `S`) unless the view knows a newer change of that user
 * (a diff that arrived while the state was read); the floor rises to `S` and
 * the tombstones it covers are forgotten. With `null` (a store that does not
 * version its changes), the state replaces the view whole.
 */
export function applyState<Info>(
  view: PresenceView<Info>,
  entries: readonly StateEntry[],
  version: number | null,
  count?: number,
): ViewResult<Info> {
  const draft = new Draft(view);
  const present = new Map(entries.map(([userId, info]) => [userId, info as Info | undefined]));
  for (const [userId, held] of view.users) {
    if (!present.has(userId) && (version === null || (held.version ?? NONE) <= version)) draft.remove(userId, null);
  }
  if (version === null) {
    draft.own().tombstones.clear();
    draft.next.early.clear();
    for (const [userId, info] of present) draft.set(userId, info, null);
  } else {
    for (const [userId, info] of present) {
      const newer = (view.users.get(userId)?.version ?? NONE) > version || (view.tombstones.get(userId) ?? NONE) > version;
      if (!newer) draft.join(userId, info, version);
    }
    draft.raiseFloor(version);
  }
  if (count !== undefined) draft.setCount(count, version);
  return draft.done();
}

/**
 * Applies one diff frame of the view's scope (other keys change nothing). An
 * entry with a version is applied only when newer than the floor and than
 * every change of that user the view knows; an unversioned one is applied in
 * the order it arrives. A leave leaves a tombstone; a join or an update
 * clears it; an update for a user not held is not listed (but is kept, in
 * case the older join is still on its way).
 */
export function applyDiff<Info>(view: PresenceView<Info>, frame: DiffFrame, scope: SyncScope): ViewResult<Info> {
  const draft = new Draft(view);
  if (frame.key !== scopeKey(scope)) return draft.done();
  const wanted = scope.type === "users" ? new Set(scope.userIds) : undefined;
  const each = (entries: DiffEntry[] | undefined, apply: (userId: string, version: number | null, info: Info | undefined) => void) => {
    for (const [userId, version, info] of entries ?? []) {
      if ((wanted && !wanted.has(userId)) || (version !== null && version <= draft.known(userId))) continue;
      apply(userId, version, info as Info | undefined);
    }
  };
  each(frame.leaves, (userId, version) => {
    const early = draft.next.early.get(userId);
    if (early && (version === null || early.version < version)) draft.own().early.delete(userId);
    draft.remove(userId, version);
  });
  each(frame.joins, (userId, version, info) => draft.join(userId, info, version));
  each(frame.updates, (userId, version, info) => {
    if (draft.next.users.has(userId)) draft.set(userId, info, version);
    else if (version !== null && version > (draft.next.early.get(userId)?.version ?? NONE)) draft.own().early.set(userId, { info, version });
  });
  if (frame.count !== undefined) draft.setCount(frame.count, frame.version ?? null);
  // Bounded memory with no state for a long while: the older half of the tombstones and early updates
  // (a room's subscribers get every user's updates) go, and the floor rises to them (a change that old
  // arriving now is taken as too late: reorders span a few ticks).
  const { tombstones, early } = draft.next;
  if (tombstones.size + early.size > MAX_TOMBSTONES) {
    const versions = [...tombstones.values(), ...[...early.values()].map((update) => update.version)].sort((a, b) => a - b);
    draft.raiseFloor(versions[versions.length >> 1]!);
  }
  return draft.done();
}
