import { readFileSync } from "node:fs";
import type { Socket as ClientSocket } from "socket.io-client";
import { expect, it } from "vitest";
import { sleep } from "../demo-process";
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
    // warm up, then take the baselines
    const warm: ClientSocket[] = [];
    for (let i = 0; i < 50; i++) warm.push(await deployment.open(`churn-${i}`, deployment.instances[i % 2]));
    for (const socket of warm) deployment.close(socket);
    await sleep(1000);
    const fdsBefore = [...watched, ...primaries].map(openFds);
    const rssBefore = watched.map(rss);

    let operations = 0;
    let kills = 0;
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
          .then((socket) => open.push(socket), () => {});
        operations++;
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
    console.log(`churn: ${operations} connects and disconnects, ${kills} worker kills, ${deployment.truth().length} users online at the end`);
    expect(operations).toBeGreaterThan(2000);
    expect(kills).toBeGreaterThanOrEqual(Math.floor(SOAK_MS / 12_000));

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
