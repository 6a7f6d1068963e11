import { readFileSync } from "node:fs";
import type { Socket as ClientSocket } from "socket.io-client";
import { expect, it } from "vitest";
import { eventually, sleep } from "../demo-process";
import { Deployment, TIMING, openFds, workerPids } from "./deployment";

const SOAK_MS = Number(process.env.FAULTS_SOAK_MS ?? 60_000);
const rss = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

it(`churn soak: ${SOAK_MS / 1000} s of connects and disconnects with random worker kills ends exactly at the truth`, { timeout: SOAK_MS + 120_000 }, async () => {
  const deployment = await Deployment.start();
  try {
    const [a, b] = deployment.instances as [NonNullable<Deployment["instances"][0]>, NonNullable<Deployment["instances"][0]>];
    // the second worker of each instance is never killed: its fds and memory are watched for leaks
    const watched = [workerPids(a)[1]!, workerPids(b)[1]!];
    const primaries = [a.child.pid!, b.child.pid!];
    for (let i = 0; i < 200; i++) await deployment.token(`churn-${i}`, a);
    // observers, two per instance, each keeping the announcements it hears of the churn's users in order;
    // one whose own connection drops (its worker killed) misses some, and is left out of the checks
    // (each event carries its transition's version as its last argument: the order per user, whatever order they arrive in)
    type Heard = { userId: string; joined: boolean; version: number };
    const observers: Array<{ socket: ClientSocket; heard: Heard[]; dropped: boolean }> = [];
    const versionOf = (args: unknown[]) => (typeof args.at(-1) === "number" ? (args.at(-1) as number) : Number.NaN);
    for (let i = 0; i < 4; i++) {
      const observer = { socket: await deployment.open(`observer-${i}`, deployment.instances[i % 2]), heard: [] as Heard[], dropped: false };
      const hear = (joined: boolean) => (userId: string, ...rest: unknown[]) => {
        if (userId.startsWith("churn-")) observer.heard.push({ userId, joined, version: versionOf(rest) });
      };
      observer.socket.on("user has connected", hear(true));
      observer.socket.on("user has disconnected", hear(false));
      observer.socket.once("disconnect", () => (observer.dropped = true));
      observers.push(observer);
    }
    // warm up, then take the baselines
    const warm: ClientSocket[] = [];
    for (let i = 0; i < 50; i++) warm.push(await deployment.open(`churn-${i}`, deployment.instances[i % 2]));
    for (const socket of warm) deployment.close(socket);
    await sleep(1000);
    const fdsBefore = [...watched, ...primaries].map(openFds);
    const rssBefore = watched.map(rss);

    // operations are the connects that succeeded and the disconnects the test made; a failed connect is counted apart
    let operations = 0;
    let failedConnects = 0;
    let kills = 0;
    /** The test's own record: every churn user it saw online (a connection of theirs open), at any moment. */
    const wentOnline = new Set<string>();
    const open: ClientSocket[] = [];
    const started = Date.now();
    const running = () => Date.now() - started < SOAK_MS;
    // several lanes of clients coming and going, each as fast as the server lets it
    const lane = async () => {
      while (running()) {
        const userId = `churn-${Math.floor(Math.random() * 200)}`;
        const instance = deployment.instances[Math.floor(Math.random() * 2)];
        const reconnecting = Math.random() < 0.5;
        await deployment
          .open(userId, instance, reconnecting ? { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 200 } : {})
          .then(
            (socket) => {
              open.push(socket);
              wentOnline.add(userId);
              operations++;
            },
            () => failedConnects++,
          );
        if (open.length > 60 || Math.random() < 0.45) {
          const [socket] = open.splice(Math.floor(Math.random() * open.length), 1);
          if (socket) deployment.close(socket);
          operations++;
        }
      }
    };
    // and a worker killed every 8 to 12 seconds (never the watched ones)
    const killer = async () => {
      await sleep(5000);
      while (running()) {
        const instance = deployment.instances[kills % 2]!;
        const victim = workerPids(instance).find((pid) => !watched.includes(pid));
        if (victim) {
          process.kill(victim, "SIGKILL");
          kills++;
        }
        await sleep(8000 + Math.random() * 4000);
      }
    };
    // V8 grows a busy worker's heap to a steady state (measured: +46 MB after 60 s of churn, and the
    // same after 150 s), so a leak shows as growth after the first half of the soak, not since its start
    let rssMid: number[] = [];
    const sampler = async () => {
      await sleep(SOAK_MS / 2);
      rssMid = watched.map(rss);
    };
    await Promise.all([...Array.from({ length: 8 }, lane), killer(), sampler()]);
    // let the killed workers come back, then compare with the truth
    await deployment.convergence(2 * TIMING.leaseTimeoutMs + 10_000);
    console.log(`churn: ${operations} connects and disconnects (${failedConnects} connects failed, not counted), ${kills} worker kills, ${deployment.truth().length} users online at the end`);
    expect(operations).toBeGreaterThan(2000);
    expect(kills).toBeGreaterThanOrEqual(Math.floor(SOAK_MS / 12_000));

    // The announcements, against the test's own record: what each observer that stayed connected heard
    // last of each user (in version order) is the truth, and stays so through a quiet period; every user
    // the test saw online was heard joining; joins and leaves alternate per user, in version order.
    const intact = observers.filter((observer) => !observer.dropped);
    expect(intact.length, "observers whose connection survived the kills").toBeGreaterThan(0);
    const notAlternating = new Set<string>();
    const online = (heard: Heard[]) => {
      const state = new Map<string, boolean>();
      for (const { userId, joined, version } of [...heard].sort((x, y) => x.version - y.version)) {
        expect(version, `the version of an announcement of ${userId}`).not.toBeNaN();
        if ((state.get(userId) ?? false) === joined) {
          const history = heard.filter((e) => e.userId === userId).map((e) => `${e.joined ? "+" : "-"}v${e.version}`).join(" ");
          notAlternating.add(`${userId} announced ${joined ? "joining while online" : "leaving while offline"} at v${version} (arrival order: ${history})`);
        }
        state.set(userId, joined);
      }
      return [...state].flatMap(([userId, isOnline]) => (isOnline ? [userId] : [])).sort();
    };
    const churnTruth = () => deployment.truth().filter((u) => u.startsWith("churn-"));
    await eventually(() => intact.forEach(({ heard }) => expect(online(heard)).toEqual(churnTruth())), 15_000, "every intact observer's announcements to end at the truth");
    await sleep(2000);
    for (const { heard } of intact) {
      expect(online(heard), "an observer's announcements after a quiet period").toEqual(churnTruth());
      const joined = new Set(heard.filter((e) => e.joined).map((e) => e.userId));
      expect([...wentOnline].filter((u) => !joined.has(u)), "users the test saw online, never announced joining").toEqual([]);
    }
    console.log(`churn: ${intact.length} of ${observers.length} observers intact, ${intact[0]!.heard.length} announcements heard by the first, ${wentOnline.size} users went online`);
    expect([...notAlternating], "announcements that did not alternate").toEqual([]);

    // no key belongs to a dead process: one process per live worker, one connections hash at most each
    await sleep(TIMING.leaseTimeoutMs + 2 * TIMING.heartbeatMs);
    const processes = deployment.redis.cli("ZRANGE", "{presence}:processes", "0", "-1").split("\n").filter(Boolean);
    expect(processes).toHaveLength(4);
    for (const key of deployment.keys()) {
      expect(key.startsWith("{presence}:")).toBe(true);
      if (key.startsWith("{presence}:connections:")) expect(processes).toContain(key.slice("{presence}:connections:".length));
    }
    expect(deployment.keys()).not.toContain("{presence}:cleanups");

    // everyone leaves: presence empties, and the watched processes hold no more fds than before
    for (const socket of [...deployment.clients]) deployment.close(socket);
    await deployment.convergence(10_000);
    expect(await deployment.presence(a)).toEqual([]);
    await sleep(2000);
    const fdsAfter = [...watched, ...primaries].map(openFds);
    fdsAfter.forEach((fds, i) => expect(fds, `fds of process ${i}`).toBeLessThanOrEqual(fdsBefore[i]! + 5));
    watched.map(rss).forEach((bytes, i) => {
      expect(bytes - rssMid[i]!, `RSS growth of worker ${i} over the second half of the soak`).toBeLessThan(48 * 1024 * 1024);
      expect(bytes - rssBefore[i]!, `RSS growth of worker ${i} since the start`).toBeLessThan(128 * 1024 * 1024);
    });
  } finally {
    await deployment.stop();
  }
});
