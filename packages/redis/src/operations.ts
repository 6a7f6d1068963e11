import { parseUserInfo, type Transition } from "@presence/core";

/**
 * One write of apply.lua, named in TypeScript; the script sees a letter
 * (`OPERATION_LETTERS` in encoding.ts). `info` is JSON, "" for none.
 * `republish` counts a connection again under a new process id after a fence.
 * `slot` names the connection in Redis (slots.ts). `repeat`: a connect of a
 * connection already open here (it brings new info).
 */
export type Operation =
  | { kind: "connect" | "republish"; connectionId: string; slot: number; userId: string; info: string; repeat?: boolean }
  | { kind: "disconnect"; connectionId: string; slot: number; userId: string }
  | { kind: "join" | "leave"; connectionId: string; slot: number; userId: string; room: string }
  | { kind: "update"; userId: string; info: string };

export type OperationKind = Operation["kind"];

/** What apply.lua did with one operation. */
export type OperationOutcome =
  | { type: "unchanged" }
  /** The connection id is counted for another user under this process id: nothing was written. */
  | { type: "conflict" }
  /**
   * A transition, with the version Redis gave it; for a join, the user's
   * info as Redis held it. `taken`: a cleaner announced it, because the
   * process seemed dead before it read the reply (includes/record.lua).
   */
  | { type: "transition"; version: number; info?: string; taken?: true };

/** The transition an operation made, with its version. */
export function transitionOf(operation: Operation, version: number, joinInfo?: string): Transition {
  switch (operation.kind) {
    case "connect":
    case "republish":
      return operation.info === ""
        ? { type: "connected", userId: operation.userId, version }
        : { type: "connected", userId: operation.userId, info: parseUserInfo(operation.info), version };
    case "disconnect":
      return { type: "disconnected", userId: operation.userId, version };
    case "join":
      return joinInfo === undefined
        ? { type: "joined", room: operation.room, userId: operation.userId, version }
        : { type: "joined", room: operation.room, userId: operation.userId, info: parseUserInfo(joinInfo), version };
    case "leave":
      return { type: "left", room: operation.room, userId: operation.userId, version };
    case "update":
      return { type: "updated", userId: operation.userId, info: parseUserInfo(operation.info), version };
  }
}
