import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDemo, type DemoProcess } from "./demo-process";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

describe("the demo page in a real browser (headless Chromium)", () => {
  let demo: DemoProcess;
  let browser: Browser;

  beforeAll(async () => {
    demo = await startDemo(["--mode", "cluster", "--workers", "2"]);
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
    } catch (error) {
      throw new Error(
        `could not start Chromium at ${CHROMIUM} (install it with: apt-get install chromium): ${(error as Error).message}`,
      );
    }
  });
  afterAll(async () => {
    await browser?.close();
    await demo?.stop();
  });

  async function signIn(name: string, status?: string): Promise<Page> {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(demo.url);
    await page.fill("#name", name);
    if (status) await page.fill("#status-input", status);
    await page.click("button[type=submit]");
    await page.waitForSelector(`#users li[data-user-id="${name}"]`);
    return page;
  }

  const listed = (page: Page) => page.$$eval("#users li", (items) => items.map((li) => (li as HTMLElement).dataset.userId));

  it("shows two signed-in users each other, live, and the one who leaves goes away", { timeout: 60_000 }, async () => {
    const alice = await signIn("alice");
    // the page holds the list from the state and the diffs: it never asks the HTTP API again
    const refetches: string[] = [];
    alice.on("request", (request) => new URL(request.url()).pathname.startsWith("/api/presence") && refetches.push(request.url()));
    const bob = await signIn("bob");

    await alice.waitForSelector('#users li[data-user-id="bob"]');
    await bob.waitForSelector('#users li[data-user-id="alice"]');
    expect((await listed(alice))!.sort()).toEqual(["alice", "bob"]);
    expect(await alice.textContent("#count")).toBe("2");
    expect(await alice.textContent("#users li.me")).toContain("alice (you)");

    await bob.context().close();
    await alice.waitForSelector('#users li[data-user-id="bob"]', { state: "detached" });
    expect(await listed(alice)).toEqual(["alice"]);
    expect(await alice.textContent("#count")).toBe("1");
    expect(refetches).toEqual([]);
    await alice.screenshot({ path: process.env.DEMO_SCREENSHOT ?? "/tmp/presence-demo.png" });
  });

  it("shows channels with their members' names and statuses, live", { timeout: 60_000 }, async () => {
    const carol = await signIn("carol", "on a call");
    const dave = await signIn("dave");
    const channelMember = (page: Page, user: string) => `.room[data-room="general"] li[data-user-id="${user}"]`;

    await carol.click('.room[data-room="general"] button');
    await dave.click('.room[data-room="general"] button');
    await carol.waitForSelector(channelMember(carol, "dave"));
    await dave.waitForSelector(channelMember(dave, "carol"));
    expect(await dave.textContent(channelMember(dave, "carol"))).toContain("on a call");
    // a third member appears in both others' channel lists
    const erin = await signIn("erin", "new here");
    await erin.click('.room[data-room="general"] button');
    for (const page of [carol, dave]) await page.waitForSelector(channelMember(page, "erin"));
    expect(await carol.textContent(channelMember(carol, "erin"))).toContain("new here");
    await erin.context().close();
    for (const page of [carol, dave]) await page.waitForSelector(channelMember(page, "erin"), { state: "detached" });

    await dave.fill("#my-status", "brb");
    await dave.click("#update button");
    await expect.poll(() => carol.textContent(channelMember(carol, "dave"))).toContain("brb");

    await dave.click('.room[data-room="general"] button'); // leave
    await carol.waitForSelector(channelMember(carol, "dave"), { state: "detached" });
    expect(await carol.$(`#users li[data-user-id="dave"]`)).not.toBeNull(); // still online, just not in #general
    await carol.screenshot({ path: process.env.DEMO_ROOMS_SCREENSHOT ?? "/tmp/presence-demo-rooms.png" });
    await carol.context().close();
    await dave.context().close();
  });

  it("refuses a bad name on the page with the server's message", async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(demo.url);
    await page.fill("#name", " ");
    await page.click("button[type=submit]");
    await expect.poll(() => page.textContent("#error")).toContain("must not be empty");
    await page.context().close();
  });
});
