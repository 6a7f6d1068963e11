import type { Transition, UserInfo } from "@presence/core";
import type { DiffEntry, DiffFrame } from "@presence/core/protocol";

type ChangeKind = "join" | "leave" | "update";

/** The newest change one tick saw of one user in one scope. */
interface UserChange {
  kind: ChangeKind;
  info: UserInfo | undefined;
  /** Its number in the node's delivery order (see delivery-order.ts); `null` for a store that does not version (arrival order then). */
  version: number | null;
}

const newer = (version: number | null, than: UserChange | undefined) =>
  than === undefined || version === null || than.version === null || version > than.version;

/**
 * The changes of one scope during one tick, coalesced per user to the newest
 * by delivery number: a leave then a rejoin is the rejoin, a late
 * leave after a newer join is dropped. An update folds into a join of the
 * same tick (the join then carries the newest info).
 */
export class ScopeChanges {
  readonly #users = new Map<string, UserChange>();

  get size(): number {
    return this.#users.size;
  }

  userIds(): IterableIterator<string> {
    return this.#users.keys();
  }

  record(kind: ChangeKind, userId: string, version: number | null, info?: UserInfo): void {
    const change = this.#users.get(userId);
    if (!newer(version, change)) return;
    const joined = kind === "update" && change?.kind === "join";
    this.#users.set(userId, { kind: joined ? "join" : kind, info: kind === "leave" ? undefined : info, version });
  }

  /** Joins that carry no info: the flush looks their info up (a store may not carry it with a room join). */
  joinsWithoutInfo(): string[] {
    const ids: string[] = [];
    for (const [userId, change] of this.#users) if (change.kind === "join" && change.info === undefined) ids.push(userId);
    return ids;
  }

  fillInfo(userId: string, info: UserInfo | undefined): void {
    const change = this.#users.get(userId);
    if (change && change.info === undefined) change.info = info;
  }

  /** The frame of these changes (only those of `userIds`, when given); undefined when there are none. */
  frame(key: string, userIds?: Iterable<string>): DiffFrame | undefined {
    const joins: DiffEntry[] = [];
    const leaves: DiffEntry[] = [];
    const updates: DiffEntry[] = [];
    const entries = userIds === undefined ? this.#users : [...userIds].flatMap((id) => (this.#users.has(id) ? [[id, this.#users.get(id)!] as const] : []));
    for (const [userId, { kind, info, version }] of entries) {
      if (kind === "leave") leaves.push([userId, version]);
      else (kind === "join" ? joins : updates).push(info === undefined ? [userId, version] : [userId, version, info]);
    }
    if (joins.length + leaves.length + updates.length === 0) return undefined;
    return { key, ...(joins.length ? { joins } : {}), ...(leaves.length ? { leaves } : {}), ...(updates.length ? { updates } : {}) };
  }
}

/** Every transition this node heard during one tick, waiting for the flush. */
export class SyncBatch {
  /** How many transitions were queued since the last flush. */
  changes = 0;
  /** The all-users scope, and the user-list scopes (which take their users' entries). */
  readonly all = new ScopeChanges();
  readonly rooms = new Map<string, ScopeChanges>();
  /** Info updates, for every room subscriber (an update does not say which rooms the user is in). */
  readonly roomUpdates = new ScopeChanges();
  /** Whether the online count may have changed. */
  countChanged = false;

  /** Whether nothing was queued since the last flush. */
  get empty(): boolean {
    return this.changes === 0;
  }

  add(transition: Transition): void {
    this.changes++;
    const version = transition.version ?? null;
    switch (transition.type) {
      case "connected":
        this.countChanged = true;
        return this.all.record("join", transition.userId, version, transition.info);
      case "disconnected":
        this.countChanged = true;
        return this.all.record("leave", transition.userId, version);
      case "updated":
        this.all.record("update", transition.userId, version, transition.info);
        return this.roomUpdates.record("update", transition.userId, version, transition.info);
      case "joined":
      case "left": {
        let room = this.rooms.get(transition.room);
        if (!room) this.rooms.set(transition.room, (room = new ScopeChanges()));
        if (transition.type === "joined") room.record("join", transition.userId, version, transition.info);
        else room.record("leave", transition.userId, version);
        return;
      }
    }
  }
}
