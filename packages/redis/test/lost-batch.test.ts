import { afterEach, describe, expect, it } from "vitest";
import { deployment, sleep, waitFor, within } from "./harness";
import { useRedis } from "./redis-fixture";

// A batch Redis applied whose process never read the reply: cut off for
// good (to Redis, a process killed), or back only after a survivor cleaned
// it up. Its transitions were decided, so someone must announce them, once.
// Provoked on a real redis-server through per-store TCP proxies; the exact
// log of every store's announcements is checked.
const redis = useRedis();
const FAST = { heartbeatMs: 200, leaseTimeoutMs: 1000, commandTimeoutMs: 500, leaveGraceMs: 0 };
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function setup() {
  const d = deployment(redis.server.port, FAST);
  cleanups.push(() => d.closeAll());
  return d;
}

describe("a batch applied whose reply its process never read", () => {
  it("is announced by the survivor that cleans the process up, before the leaves the cleanup decides, once", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await b.store.connect("b1", "bob");
    const lost = a.proxy.dropReplyTo("a1");
    // one batch: alice online (with her info) and in room r, then the reply is lost and a is gone for good
    const calls = Promise.allSettled([a.store.connect("a1", "alice", { name: "Alice" }), a.store.join("a1", "r"), a.store.updateInfo("alice", { name: "Al" })]);
    await within("the batch's reply to be lost", lost);
    a.proxy.cut();
    await calls;
    await waitFor("b to clean a up", async () => !(await redis.admin.hexists(b.store.keys.users, "alice")), 10_000);
    await sleep(3 * FAST.heartbeatMs); // a repeat would come now
    expect(d.log.join(" ")).toBe("+bob +alice r>alice ~alice r<alice -alice");
    const versions = d.transitions.map((t) => t.version!);
    expect(versions).toEqual([...versions].sort((x, y) => x - y));
    expect(d.transitions.find((t) => t.type === "connected" && t.userId === "alice")).toMatchObject({ info: { name: "Alice" } });
    expect(d.transitions.find((t) => t.type === "joined")).toMatchObject({ info: { name: "Alice" } });
    expect(d.transitions.find((t) => t.type === "updated")).toMatchObject({ info: { name: "Al" } });
  });

  it("is not announced again by its process when it comes back after the survivor announced it", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await b.store.connect("b1", "bob");
    const lost = a.proxy.dropReplyTo("a1");
    const connected = a.store.connect("a1", "alice").catch((error: Error) => error);
    await within("the connect's reply to be lost", lost);
    a.proxy.cut();
    expect(await connected).toBeInstanceOf(Error);
    await waitFor("b to clean a up", async () => d.log.includes("-alice"), 10_000);
    // a is back: it settles its batch from the record (a survivor announced it), moves to a new id and counts alice again
    a.proxy.restore();
    await waitFor("a to be live again", async () => a.store.phase === "live" && (await redis.admin.hexists(b.store.keys.users, "alice")) === 1, 10_000);
    await within("a to settle", a.store.settled(), 10_000);
    await sleep(3 * FAST.heartbeatMs);
    expect(d.log.join(" ")).toBe("+bob +alice -alice +alice");
    const versions = d.transitions.map((t) => t.version!);
    expect(new Set(versions).size).toBe(versions.length);
  });

  it("is announced by its process's own goodbye when its reply is still lost at the goodbye's deadline", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await b.store.connect("b1", "bob");
    // every reply to the batch is lost: the first, and each resend that would settle it, until a has said goodbye
    let closing = true;
    const lose = async () => {
      while (closing) await a.proxy.dropReplyTo("tab-in-doubt");
    };
    const losing = lose();
    const connected = a.store.connect("tab-in-doubt", "alice").catch((error: Error) => error);
    await sleep(100);
    // a goes (no grace): its goodbye cleans it up after the drain's deadline, the batch still in doubt,
    // and takes the batch's transitions from its record (cleanup.lua, the second call of its own claim)
    await within("a to say goodbye", a.store.close(), 10_000);
    closing = false;
    expect(await connected).toBeInstanceOf(Error);
    void losing;
    await sleep(3 * FAST.heartbeatMs);
    expect(d.log.join(" ")).toBe("+bob +alice -alice");
    expect(await redis.admin.hexists(b.store.keys.users, "alice")).toBe(0);
  });

  it("is not announced again by a survivor when its process is cut off the moment the call resolved", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await a.store.connect("a1", "alice");
    await a.store.join("a1", "r");
    a.proxy.cut(); // the call resolved: Redis knows its transitions were announced
    await waitFor("b to clean a up", async () => d.log.includes("-alice"), 10_000);
    await sleep(3 * FAST.heartbeatMs);
    expect(d.log.join(" ")).toBe("+alice r>alice r<alice -alice");
    expect(b.store.phase).toBe("live");
  });
});
