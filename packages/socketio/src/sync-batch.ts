import type { Transition, UserInfo } from "@presence/core";
import type { DiffEntry, DiffFrame } from "./sync-protocol";

type ChangeKind = "join" | "leave" | "update";

/** What one tick did to one user in one scope. */
interface UserChange {
  /** The first change seen in the tick: it says whether the user was in the scope before it. */
  first: ChangeKind;
  online: boolean;
  /** A join happened in the tick: the user is (re)announced with the latest info. */
  joined: boolean;
  info: UserInfo | undefined;
  /** When the last change was decided (this node's clock, ms). */
  at: number;
}

/**
 * The changes of one scope during one tick, coalesced per user: a join then
 * a leave of a user who was not there cancel out; a leave then a join is a
 * join with the latest info; several updates are the last one.
 */
export class ScopeChanges {
  readonly #users = new Map<string, UserChange>();

  get size(): number {
    return this.#users.size;
  }

  userIds(): IterableIterator<string> {
    return this.#users.keys();
  }

  record(kind: ChangeKind, userId: string, at: number, info?: UserInfo): void {
    let change = this.#users.get(userId);
    if (!change) {
      change = { first: kind, online: kind !== "leave", joined: false, info: undefined, at };
      this.#users.set(userId, change);
    }
    change.at = at;
    if (kind === "join") {
      change.online = true;
      change.joined = true;
      change.info = info;
    } else if (kind === "leave") {
      change.online = false;
      change.joined = false;
      change.info = undefined;
    } else {
      change.info = info;
    }
  }

  /** Join entries that carry no info: the flush looks their info up (a room join does not carry it). */
  joinsWithoutInfo(): string[] {
    const ids: string[] = [];
    for (const [userId, change] of this.#users) if (change.online && change.joined && change.info === undefined) ids.push(userId);
    return ids;
  }

  fillInfo(userId: string, info: UserInfo | undefined): void {
    const change = this.#users.get(userId);
    if (change && change.info === undefined) change.info = info;
  }

  /** The frame for these changes, stamped with `version` (the flushing node's clock); undefined when they cancelled out. */
  frame(key: string, version: number): DiffFrame | undefined {
    const joins: DiffEntry[] = [];
    const leaves: DiffEntry[] = [];
    const updates: DiffEntry[] = [];
    for (const [userId, { first, online, joined, info, at }] of this.#users) {
      const age = Math.max(0, version - at);
      if (online) (joined ? joins : updates).push(info === undefined ? [userId, age] : [userId, age, info]);
      else if (first !== "join") leaves.push([userId, age]);
    }
    if (joins.length + leaves.length + updates.length === 0) return undefined;
    return {
      key,
      version,
      ...(joins.length ? { joins } : {}),
      ...(leaves.length ? { leaves } : {}),
      ...(updates.length ? { updates } : {}),
    };
  }
}

/** Everything one node decided during one tick, waiting for the flush. */
export class SyncBatch {
  /** Whether nothing was queued since the last flush. */
  empty = true;
  /** The all-users scope (and the user-list scopes, which read its frame). */
  readonly all = new ScopeChanges();
  /** Info updates, for every room subscriber (a transition does not say which rooms the user is in). */
  readonly roomUpdates = new ScopeChanges();
  readonly rooms = new Map<string, ScopeChanges>();
  /** Whether the online count may have changed. */
  countChanged = false;

  add(transition: Transition, at: number): void {
    this.empty = false;
    switch (transition.type) {
      case "connected":
        this.countChanged = true;
        return this.all.record("join", transition.userId, at, transition.info);
      case "disconnected":
        this.countChanged = true;
        return this.all.record("leave", transition.userId, at);
      case "updated":
        this.all.record("update", transition.userId, at, transition.info);
        return this.roomUpdates.record("update", transition.userId, at, transition.info);
      case "joined":
      case "left": {
        let room = this.rooms.get(transition.room);
        if (!room) this.rooms.set(transition.room, (room = new ScopeChanges()));
        if (transition.type === "joined") room.record("join", transition.userId, at, transition.info);
        else room.record("leave", transition.userId, at);
        return;
      }
    }
  }
}
