import { StoreUnavailableError } from "@presence/core";
import { createHash } from "node:crypto";
import { unavailable, withTimeout, type Connection } from "./client";
import { decodeOutcome, fenceOf, knownField, operationArguments, parseOutboxEntry, type Known, type OutboxEntry } from "./encoding";
import { FencedError } from "./errors";
import type { PresenceKeys } from "./keys";
import { resolveIncludes } from "./lua-includes";
import type { Operation, OperationOutcome } from "./operations";
import ackSource from "./scripts/ack.lua";
import applySource from "./scripts/apply.lua";
import cleanupRoomsSource from "./scripts/cleanup-rooms.lua";
import cleanupSource from "./scripts/cleanup.lua";
import heartbeatSource from "./scripts/heartbeat.lua";
import clock from "./scripts/includes/clock.lua";
import fences from "./scripts/includes/fences.lua";
import outbox from "./scripts/includes/outbox.lua";
import pack from "./scripts/includes/pack.lua";
import record from "./scripts/includes/record.lua";
import slots from "./scripts/includes/slots.lua";
import version from "./scripts/includes/version.lua";
import knownSource from "./scripts/known.lua";
import retireSource from "./scripts/retire.lua";
import statesSource from "./scripts/states.lua";

const INCLUDES = {
  "includes/clock.lua": clock,
  "includes/fences.lua": fences,
  "includes/pack.lua": pack,
  "includes/outbox.lua": outbox,
  "includes/record.lua": record,
  "includes/slots.lua": slots,
  "includes/version.lua": version,
};

/** A script with its includes resolved, and its SHA-1 for EVALSHA. */
interface Script {
  name: string;
  source: string;
  sha: string;
}

function script(name: string, source: string): Script {
  const resolved = resolveIncludes(name, source, INCLUDES);
  return { name, source: resolved, sha: createHash("sha1").update(resolved).digest("hex") };
}

export const SCRIPTS = {
  apply: script("apply.lua", applySource),
  ack: script("ack.lua", ackSource),
  heartbeat: script("heartbeat.lua", heartbeatSource),
  cleanup: script("cleanup.lua", cleanupSource),
  cleanupRooms: script("cleanup-rooms.lua", cleanupRoomsSource),
  known: script("known.lua", knownSource),
  retire: script("retire.lua", retireSource),
  states: script("states.lua", statesSource),
};

export type ClaimStatus = "claimed" | "alive" | "busy" | "gone";
export type ChunkStatus = "more" | "done" | "alive" | "busy" | "gone";

/**
 * How a cleanup treats the process it removes: `expired`, only once its
 * lease ran out; `retire`, an older id of this store (or this store saying
 * goodbye), live or not; `retire-quietly`, the same without writing leaves
 * (after a data loss, the recovery settles them from the known accounts).
 */
export type CleanupMode = "expired" | "retire" | "retire-quietly";

/** What a cleanup call answered: its status and every entry of the cleaner's outbox not yet dropped. */
export interface CleanupReply<S extends string> {
  status: S;
  outbox: OutboxEntry[];
}

/** What a heartbeat answered: dead processes to clean, and the outbox entries not yet announced. */
export interface HeartbeatReply {
  dead: string[];
  outbox: OutboxEntry[];
}

export interface ScriptOptions {
  /** Bounds every call. */
  commandTimeoutMs: number;
  /** A process's lease, and a cleaner's claim. */
  leaseTimeoutMs: number;
}

/**
 * The typed script layer: one method per script, building its keys and
 * arguments, every call bounded by the command timeout, fence codes turned
 * into a {@link FencedError} (by `fenceOf`, the one mapping), and anything
 * else that went wrong into a `StoreUnavailableError` (the call may or may
 * not have run).
 */
export class PresenceScripts {
  readonly #connection: Connection;
  readonly #keys: PresenceKeys;
  readonly #options: ScriptOptions;

  constructor(connection: Connection, keys: PresenceKeys, options: ScriptOptions) {
    this.#connection = connection;
    this.#keys = keys;
    this.#options = options;
  }

  close(): void {
    this.#connection.close();
  }

  /** Where Redis is and, when the connection is down, why: for the errors of calls that never got an answer. */
  whereabouts(): string {
    const { address, lastError } = this.#connection;
    return lastError ? `${address} (${lastError.message})` : address;
  }

  /** One command, bounded and normalized like every call (a read, or a write whose loss is harmless). */
  command<T>(what: string, args: readonly string[]): Promise<T> {
    return this.#bounded(what, () => this.#connection.send(args) as Promise<T>);
  }

  /** Batch `seq` of a process's operations (apply.lua). */
  async apply(processId: string, seq: number, operations: readonly Operation[]): Promise<OperationOutcome[]> {
    const keys = this.#keys;
    const keyList = [keys.processes, keys.users, keys.connections(processId), keys.memberships(processId), keys.info, keys.record(processId), keys.version, keys.slots(processId)];
    const roomIndex = new Map<string, number>();
    const indexOf = (room: string) => {
      let index = roomIndex.get(room);
      if (index === undefined) {
        keyList.push(keys.room(room));
        roomIndex.set(room, (index = keyList.length));
      }
      return index;
    };
    const args = [processId, String(this.#options.leaseTimeoutMs), String(seq)];
    for (const operation of operations) args.push(...operationArguments(operation, indexOf));
    const reply = await this.#fenced(SCRIPTS.apply, keyList, args, processId);
    // answered from a record a cleaner took: it announced the transitions (includes/record.lua)
    const taken = Array.isArray(reply) && reply.length === operations.length + 1 && reply.at(-1) === "taken";
    if (!Array.isArray(reply) || reply.length !== operations.length + (taken ? 1 : 0)) throw new Error(`apply.lua answered ${reply === null ? "null" : typeof reply} for ${operations.length} operations`);
    return reply.slice(0, operations.length).map((raw) => {
      const outcome = decodeOutcome(raw);
      return taken && outcome.type === "transition" ? { ...outcome, taken } : outcome;
    });
  }

  /** Says this process announced batch `seq` (ack.lua), so that no cleaner announces it again. */
  async ack(processId: string, seq: number): Promise<void> {
    await this.#bounded("ack", () => this.#eval(SCRIPTS.ack, [this.#keys.record(processId)], [String(seq)]));
  }

  /** Registers a new process id (heartbeat.lua "register"); resolves with the dead processes to clean. */
  register(processId: string): Promise<HeartbeatReply> {
    return this.#heartbeat(processId, "register", 0, 0);
  }

  /** Renews the lease (heartbeat.lua "renew"); `acked` is the last batch this process saw applied. */
  renew(processId: string, acked: number, announcedThrough: number): Promise<HeartbeatReply> {
    return this.#heartbeat(processId, "renew", acked, announcedThrough);
  }

  async #heartbeat(processId: string, mode: "register" | "renew", acked: number, through: number): Promise<HeartbeatReply> {
    const keys = this.#keys;
    const [dead, outbox] = (await this.#fenced(
      SCRIPTS.heartbeat,
      [keys.processes, keys.cleanups, keys.record(processId), keys.outbox(processId)],
      [processId, String(this.#options.leaseTimeoutMs), mode, "16", String(acked), String(through)],
      processId,
    )) as [string[], string[]];
    return { dead, outbox: outbox.map(parseOutboxEntry) };
  }

  /** A goodbye with a grace (retire.lua): true when the survivors will clean this process up after `graceMs`. */
  async retireAfter(processId: string, graceMs: number): Promise<boolean> {
    return (await this.#bounded("retire", () => this.#eval(SCRIPTS.retire, [this.#keys.processes], [processId, String(graceMs)]))) === 1;
  }

  /** Whether Redis keeps a record of a process's writes (not, when it never registered here or lost its data). */
  async hasRecord(processId: string): Promise<boolean> {
    return (await this.command<number>("EXISTS record", ["EXISTS", this.#keys.record(processId)])) === 1;
  }

  /**
   * Claims a dead process (chunk 0) or removes one chunk of its connections
   * (cleanup.lua), as cleaner `cleanerId`; `retiredThrough`, in the retire
   * modes, is the last entry of the dead process's outbox this store announced.
   */
  async cleanup<S extends ClaimStatus | ChunkStatus>(
    processId: string,
    cleanerId: string,
    chunk: number,
    mode: CleanupMode,
    announcedThrough: number,
    retiredThrough = 0,
  ): Promise<CleanupReply<S>> {
    const keys = this.#keys;
    const [status, ...entries] = (await this.#fenced(
      SCRIPTS.cleanup,
      [
        keys.processes,
        keys.cleanups,
        keys.users,
        keys.connections(processId),
        keys.info,
        keys.record(processId),
        keys.outbox(cleanerId),
        keys.outboxIds,
        keys.version,
        keys.outbox(processId),
        keys.slots(processId),
      ],
      [processId, cleanerId, String(this.#options.leaseTimeoutMs), String(chunk), mode, String(announcedThrough), String(retiredThrough)],
      cleanerId,
    )) as string[];
    return { status: status as S, outbox: entries.map(parseOutboxEntry) };
  }

  /** One HSCAN step over a dead process's memberships: the next cursor and the fields it returned. */
  async scanMemberships(processId: string, cursor: string, count: number): Promise<[string, string[]]> {
    const [next, entries] = await this.command<[string, string[]]>("HSCAN", ["HSCAN", this.#keys.memberships(processId), cursor, "COUNT", String(count)]);
    return [next, entries.filter((_, i) => i % 2 === 0)];
  }

  /** Whether a dead process still has memberships left. */
  async hasMemberships(processId: string): Promise<boolean> {
    return (await this.command<number>("EXISTS", ["EXISTS", this.#keys.memberships(processId)])) === 1;
  }

  /** Takes the given memberships of a dead process out of their rooms (cleanup-rooms.lua), as cleaner `cleanerId`. */
  async cleanupRooms(
    processId: string,
    cleanerId: string,
    fields: readonly { field: string; room: string }[],
    announcedThrough: number,
    quiet: boolean,
  ): Promise<CleanupReply<"ok" | "alive">> {
    const keys = this.#keys;
    const keyList = [keys.processes, keys.memberships(processId), keys.outbox(cleanerId), keys.outboxIds, keys.version];
    const roomIndex = new Map<string, number>();
    const args = [processId, cleanerId, String(announcedThrough), quiet ? "quiet" : ""];
    for (const { field, room } of fields) {
      let index = roomIndex.get(room);
      if (index === undefined) {
        keyList.push(keys.room(room));
        roomIndex.set(room, (index = keyList.length));
      }
      args.push(field, String(index));
    }
    const [status, ...entries] = (await this.#fenced(SCRIPTS.cleanupRooms, keyList, args, cleanerId)) as string[];
    return { status: status as "ok" | "alive", outbox: entries.map(parseOutboxEntry) };
  }

  /** After a data loss: records who was announced online through this process before it (known.lua "mark", kept `ttlMs`). */
  async markKnown(fields: readonly string[], ttlMs: number): Promise<void> {
    for (let i = 0; i < fields.length; i += 1000) {
      await this.#bounded("known", () => this.#eval(SCRIPTS.known, [this.#keys.known], ["mark", String(ttlMs), ...fields.slice(i, i + 1000)]));
    }
  }

  /** Whether a user (or room member) was announced online before the data loss, by any process's account, and not yet decided gone. */
  async isKnown(known: Known): Promise<boolean> {
    return (await this.command<string | null>("HGET known", ["HGET", this.#keys.known, knownField(known)])) === "1";
  }

  /** Users' presence with the version it is read as of (states.lua): `[version, per user: online, info JSON or null]`. */
  async states(userIds: readonly string[]): Promise<{ version: number; users: Array<{ online: boolean; info: string | null }> }> {
    const keys = this.#keys;
    const reply = (await this.#bounded("states", () => this.#eval(SCRIPTS.states, [keys.users, keys.info, keys.version], userIds))) as unknown[];
    const version = Number(reply[0]);
    if (!Array.isArray(reply) || reply.length !== 1 + 2 * userIds.length || !Number.isSafeInteger(version)) throw new Error(`states.lua answered ${JSON.stringify(reply).slice(0, 100)} for ${userIds.length} users`);
    return { version, users: userIds.map((_, i) => ({ online: reply[1 + 2 * i] === 1, info: (reply[2 + 2 * i] as string | null) ?? null })) };
  }

  /** Whether a user is online (in the room, for a room member), as Redis counts it now. */
  async isPresent({ userId, room }: Known): Promise<boolean> {
    const key = room === undefined ? this.#keys.users : this.#keys.room(room);
    return (await this.command<number>("HEXISTS", ["HEXISTS", key, userId])) === 1;
  }

  /**
   * Decides the leave of a known user (or room member) nobody brought back
   * (known.lua "leave"): its version for exactly one store, `decider`, who
   * announces it; `undefined` for everyone else, or when the user is back.
   */
  async knownLeave(known: Known, decider: string): Promise<number | undefined> {
    const keys = this.#keys;
    const presence = known.room === undefined ? keys.users : keys.room(known.room);
    const version = await this.#bounded("known", () =>
      this.#eval(SCRIPTS.known, [keys.known, presence, keys.version], ["leave", knownField(known), known.userId, decider]),
    );
    return typeof version === "number" && version > 0 ? version : undefined;
  }

  /** Drops what is left of old process records once they have been settled. */
  async forget(processIds: readonly string[]): Promise<void> {
    if (processIds.length === 0) return;
    await this.command("DEL records", ["DEL", ...processIds.map((id) => this.#keys.record(id))]);
  }

  /** A script that may refuse `processId` with a fence code: the one place a code becomes a {@link FencedError}. */
  async #fenced(which: Script, keys: readonly string[], args: readonly string[], processId: string): Promise<unknown> {
    const reply = await this.#bounded(which.name, () => this.#eval(which, keys, args));
    const reason = fenceOf(reply);
    if (reason !== undefined) throw new FencedError(processId, reason);
    return reply;
  }

  /** EVALSHA, falling back to EVAL when Redis does not know the script (a restart, SCRIPT FLUSH). */
  async #eval(which: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const rest = [String(keys.length), ...keys, ...args];
    try {
      return await this.#connection.send(["EVALSHA", which.sha, ...rest]);
    } catch (error) {
      // Redis's own error code, the first word of its error reply
      if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
      return await this.#connection.send(["EVAL", which.source, ...rest]);
    }
  }

  /** Runs one call under the timeout; whatever fails becomes a `StoreUnavailableError` (see the class comment). */
  async #bounded<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await withTimeout(call(), this.#options.commandTimeoutMs, what, this.#connection);
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error;
      throw unavailable(this.#connection, what, error);
    }
  }
}
