import { describePresenceStore } from "@presence/core/testing";
import { describe, expect, it } from "vitest";
import { MemoryStore } from "./memory-store";

describePresenceStore("memory", { create: () => new MemoryStore(), numRuns: 200 });

describe("MemoryStore", () => {
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
