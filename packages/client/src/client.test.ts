import type { Socket } from "socket.io-client";
import { describe, expect, it } from "vitest";
import { PresenceClientError, createPresenceClient, type PresenceClientOptions } from "./client";

/** Never reached: options are checked before the socket is touched. */
const socket = {} as Socket;

describe("createPresenceClient's options", () => {
  it.each<[string, PresenceClientOptions]>([
    ["room with countOnly", { room: "general", countOnly: true }],
    ["room with userIds", { room: "general", userIds: ["alice"] }],
    ["userIds with countOnly", { userIds: ["alice"], countOnly: true }],
    ["an empty room name", { room: "" }],
    ["an empty user id", { userIds: ["alice", ""] }],
    ["a timeout of 0", { timeoutMs: 0 }],
    ["a negative retry delay", { retryDelayMs: -1 }],
  ])("refuses %s with a typed error, at creation", (_, options) => {
    let thrown: unknown;
    try {
      createPresenceClient(socket, options);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(PresenceClientError);
    expect(thrown).toMatchObject({ code: "INVALID_OPTION", reason: "invalid-option" });
  });
});
