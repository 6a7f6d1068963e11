import { StoreUnavailableError, parseUserInfo, type Transition } from "@presence/core";
import { createHash } from "node:crypto";
import { withTimeout, type Connection } from "./client";
import { parseOutboxEntry, type OperationResult, type OutboxEntry } from "./encoding";
import { FencedError } from "./errors";
import type { PresenceKeys } from "./keys";
import { resolveIncludes } from "./lua-includes";
import applySource from "./scripts/apply.lua";
import cleanupRoomsSource from "./scripts/cleanup-rooms.lua";
import cleanupSource from "./scripts/cleanup.lua";
import heartbeatSource from "./scripts/heartbeat.lua";
import clock from "./scripts/includes/clock.lua";
import outbox from "./scripts/includes/outbox.lua";
import pack from "./scripts/includes/pack.lua";

const INCLUDES = { "includes/clock.lua": clock, "includes/pack.lua": pack, "includes/outbox.lua": outbox };

/** A script with its includes resolved, and its SHA-1 for EVALSHA. */
interface Script {
  source: string;
  sha: string;
}

function script(name: string, source: string): Script {
  const resolved = resolveIncludes(name, source, INCLUDES);
  return { source: resolved, sha: createHash("sha1").update(resolved).digest("hex") };
}

const SCRIPTS = {
  apply: script("apply.lua", applySource),
  heartbeat: script("heartbeat.lua", heartbeatSource),
  cleanup: script("cleanup.lua", cleanupSource),
  cleanupRooms: script("cleanup-rooms.lua", cleanupRoomsSource),
};

/** One operation of apply.lua; `info` is JSON ("" for none). `r` republishes a connection after a fence. */
export type Op =
  | { op: "c" | "r"; connectionId: string; userId: string; info: string }
  | { op: "d"; connectionId: string; userId: string }
  | { op: "j" | "l"; connectionId: string; userId: string; room: string }
  | { op: "u"; userId: string; info: string };

/** The transition an operation made, when apply.lua answered 1. */
export function transitionOf(op: Op): Transition {
  switch (op.op) {
    case "c":
    case "r":
      return op.info === "" ? { type: "connected", userId: op.userId } : { type: "connected", userId: op.userId, info: parseUserInfo(op.info) };
    case "d":
      return { type: "disconnected", userId: op.userId };
    case "j":
      return { type: "joined", room: op.room, userId: op.userId };
    case "l":
      return { type: "left", room: op.room, userId: op.userId };
    case "u":
      return { type: "updated", userId: op.userId, info: parseUserInfo(op.info) };
  }
}

export type ClaimStatus = "claimed" | "alive" | "busy" | "gone";
export type ChunkStatus = "more" | "done" | "alive" | "busy" | "gone";

/** What a cleanup call answered: its status and every outbox entry not yet dropped. */
export interface CleanupReply<S extends string> {
  status: S;
  outbox: OutboxEntry[];
}

/** What a heartbeat answered: dead processes to clean, and the outbox entries not yet announced. */
export interface Heartbeat {
  dead: string[];
  outbox: OutboxEntry[];
}

/** What Redis keeps of a process's writes: the last batch applied and its results. */
export interface ProcessRecord {
  seq: number;
  results: OperationResult[];
}

const isFenced = (error: unknown): error is Error => error instanceof Error && error.message.startsWith("FENCED");

/**
 * The typed script layer: one method per script, building its keys and
 * arguments, every call bounded by the command timeout, `FENCED` replies
 * turned into a {@link FencedError}, and anything else that went wrong into
 * a `StoreUnavailableError` (the call may or may not have run).
 */
export class PresenceScripts {
  readonly #connection: Connection;
  readonly #keys: PresenceKeys;
  readonly #timeoutMs: number;

  constructor(connection: Connection, keys: PresenceKeys, timeoutMs: number) {
    this.#connection = connection;
    this.#keys = keys;
    this.#timeoutMs = timeoutMs;
  }

  close(): void {
    this.#connection.close();
  }

  /** One command, bounded and normalized like every call (a read, or a write whose loss is harmless). */
  command<T>(what: string, args: readonly string[]): Promise<T> {
    return this.call(what, () => this.#connection.send(args) as Promise<T>);
  }

  /** EVALSHA, falling back to EVAL when Redis does not know the script (a restart, SCRIPT FLUSH). */
  async #eval<T>(which: Script, keys: readonly string[], args: readonly string[]): Promise<T> {
    const rest = [String(keys.length), ...keys, ...args];
    try {
      return (await this.#connection.send(["EVALSHA", which.sha, ...rest])) as T;
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
      return (await this.#connection.send(["EVAL", which.source, ...rest])) as T;
    }
  }

  /** Runs one call under the timeout, with errors normalized (see the class comment). */
  async call<T>(what: string, call: () => Promise<T>, processId?: string): Promise<T> {
    try {
      return await withTimeout(call(), this.#timeoutMs, what);
    } catch (error) {
      if (processId !== undefined && isFenced(error)) throw new FencedError(processId, error.message.includes("behind") ? "behind" : "gone");
      if (error instanceof StoreUnavailableError) throw error;
      throw new StoreUnavailableError(`Redis did not answer ${what}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
  }

  /** Batch `seq` of a process's operations (apply.lua). */
  apply(processId: string, leaseMs: number, seq: number, ops: readonly Op[]): Promise<OperationResult[]> {
    const keys = this.#keys;
    const keyList = [keys.processes, keys.users, keys.connections(processId), keys.memberships(processId), keys.info, keys.record(processId)];
    const roomIndex = new Map<string, number>();
    const args: string[] = [processId, String(leaseMs), String(seq)];
    for (const op of ops) {
      switch (op.op) {
        case "c":
        case "r":
          args.push(op.op, op.connectionId, op.userId, op.info);
          break;
        case "d":
          args.push("d", op.connectionId, "", "");
          break;
        case "u":
          args.push("u", op.userId, op.info, "");
          break;
        default: {
          let index = roomIndex.get(op.room);
          if (index === undefined) {
            keyList.push(keys.room(op.room));
            roomIndex.set(op.room, (index = keyList.length));
          }
          args.push(op.op, op.connectionId, op.room, String(index));
        }
      }
    }
    return this.call("apply", () => this.#eval<OperationResult[]>(SCRIPTS.apply, keyList, args), processId);
  }

  /** Registers a new process id (heartbeat.lua "register"); resolves with the dead processes to clean and the outbox. */
  register(processId: string, leaseMs: number, storeId: string, announcedThrough: number): Promise<Heartbeat> {
    return this.#heartbeat(processId, leaseMs, "register", 0, storeId, announcedThrough);
  }

  /** Renews the lease (heartbeat.lua "renew"); `acked` is the last batch this process saw applied. */
  renew(processId: string, leaseMs: number, acked: number, storeId: string, announcedThrough: number): Promise<Heartbeat> {
    return this.#heartbeat(processId, leaseMs, "renew", acked, storeId, announcedThrough);
  }

  async #heartbeat(processId: string, leaseMs: number, mode: "register" | "renew", acked: number, storeId: string, through: number): Promise<Heartbeat> {
    const keys = this.#keys;
    const [dead, outbox] = await this.call(
      "heartbeat",
      () =>
        this.#eval<[string[], string[]]>(
          SCRIPTS.heartbeat,
          [keys.processes, keys.cleanups, keys.record(processId), keys.outbox(storeId)],
          [processId, String(leaseMs), mode, "16", String(acked), String(through)],
        ),
      processId,
    );
    return { dead, outbox: outbox.map(parseOutboxEntry) };
  }

  /** Redis's record of a process's writes, or undefined when it has none (never registered here, or lost). */
  async record(processId: string): Promise<ProcessRecord | undefined> {
    const [seq, reply] = await this.command<Array<string | null>>("HMGET record", ["HMGET", this.#keys.record(processId), "seq", "reply"]);
    if (seq === null || seq === undefined) return undefined;
    return { seq: Number(seq), results: [...(reply ?? "")].map((c) => (c === "x" ? -1 : Number(c) as 0 | 1)) };
  }

  /** Claims a dead process (chunk 0) or removes one chunk of its connections (cleanup.lua). */
  async cleanup<S extends ClaimStatus | ChunkStatus>(
    processId: string,
    storeId: string,
    claimMs: number,
    chunk: number,
    mode: "expired" | "force",
    announcedThrough: number,
  ): Promise<CleanupReply<S>> {
    const keys = this.#keys;
    const [status, ...entries] = await this.call("cleanup", () =>
      this.#eval<string[]>(
        SCRIPTS.cleanup,
        [keys.processes, keys.cleanups, keys.users, keys.connections(processId), keys.info, keys.record(processId), keys.outbox(storeId), keys.outboxIds],
        [processId, storeId, String(claimMs), String(chunk), mode, String(announcedThrough)],
      ),
    );
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

  /** Takes the given memberships of a dead process out of their rooms (cleanup-rooms.lua). */
  async cleanupRooms(processId: string, storeId: string, fields: readonly { field: string; room: string }[], announcedThrough: number): Promise<CleanupReply<"ok" | "alive">> {
    const keys = this.#keys;
    const keyList = [keys.processes, keys.memberships(processId), keys.outbox(storeId), keys.outboxIds];
    const roomIndex = new Map<string, number>();
    const args = [processId, String(announcedThrough)];
    for (const { field, room } of fields) {
      let index = roomIndex.get(room);
      if (index === undefined) {
        keyList.push(keys.room(room));
        roomIndex.set(room, (index = keyList.length));
      }
      args.push(field, String(index));
    }
    const [status, ...entries] = await this.call("cleanup-rooms", () => this.#eval<string[]>(SCRIPTS.cleanupRooms, keyList, args));
    return { status: status as "ok" | "alive", outbox: entries.map(parseOutboxEntry) };
  }

  /** After a data loss: records who was announced online through this process before it (kept `ttlMs`). */
  async markKnown(fields: readonly string[], ttlMs: number): Promise<void> {
    for (let i = 0; i < fields.length; i += 1000) {
      const chunk = fields.slice(i, i + 1000).flatMap((field) => [field, "1"]);
      await this.command("HSET known", ["HSET", this.#keys.known, ...chunk]);
    }
    if (fields.length > 0) await this.command("PEXPIRE known", ["PEXPIRE", this.#keys.known, String(ttlMs)]);
  }

  /** Whether `field` was announced online before the data loss (by any process's account). */
  async isKnown(field: string): Promise<boolean> {
    return (await this.command<number>("HEXISTS known", ["HEXISTS", this.#keys.known, field])) === 1;
  }

  /** Takes `field` out of the known ones: true for exactly one caller, who announces its leave. */
  async claimKnown(field: string): Promise<boolean> {
    return (await this.command<number>("HDEL known", ["HDEL", this.#keys.known, field])) === 1;
  }

  /** Drops what is left of old process records once they have been settled. */
  async forget(processIds: readonly string[]): Promise<void> {
    if (processIds.length === 0) return;
    await this.command("DEL records", ["DEL", ...processIds.map((id) => this.#keys.record(id))]);
  }
}
