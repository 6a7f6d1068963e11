import { describePresenceStore } from "@presence/core/testing";
import { describe, expect, it } from "vitest";
import { MemoryStore } from "./memory-store";

describePresenceStore("memory", { create: () => new MemoryStore(), numRuns: 200 });

describe("MemoryStore", () => {
  it("refuses misspelled and ill-typed options, as plain JavaScript, naming the closest option", () => {
    const make = (options: unknown) => () => new MemoryStore(options as never);
    expect(make({ maxUserIdByte: 10 })).toThrow(/`maxUserIdByte` is not an option: did you mean `maxUserIdBytes`\?/);
    expect(make({ maxUserIdBytes: -1 })).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
    expect(make({ maxRoomBytes: "64" })).toThrow(/maxRoomBytes/);
    expect(make("big")).toThrow(/must be an object/);
  });

  it("honours maxUserIdBytes", async () => {
    const store = new MemoryStore({ maxUserIdBytes: 4 });
    await expect(store.connect("c1", "abcde")).rejects.toMatchObject({ code: "INVALID_USER_ID" });
    expect(await store.connect("c1", "abcd")).toBe(true);
    await store.close();
  });

  it("rejects synchronous-style misuse with typed errors, never throws synchronously", async () => {
    const store = new MemoryStore();
    const pending = store.connect("", "alice");
    await expect(pending).rejects.toMatchObject({ code: "INVALID_CONNECTION_ID" });
    await store.close();
  });
});
