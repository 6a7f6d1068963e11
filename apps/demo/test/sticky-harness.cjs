// A Node cluster behind @presence/sticky, for sticky-stall.test.ts:
// the primary hands each connection to one of two Socket.IO workers, and each
// worker keeps its IPC channel to the primary backed up (what a cluster
// adapter's broadcasts do to it under load) while its event loop runs in busy
// slices. Prints `listening <port>` once both workers are ready.
//   node sticky-harness.cjs
// STICKY_MODULE names another sticky layer with the same API to measure it the
// same way (a path, or a package resolvable from here), e.g. upstream's
// @socket.io/sticky 2.0.1, which left 328 of the test's 600 clients stuck.
const cluster = require("node:cluster");
const { createServer } = require("node:http");
const { setupMaster, setupWorker } = require(process.env.STICKY_MODULE || "@presence/sticky");
const { Server } = require("socket.io");

const WORKERS = 2;
/** Bytes of each message a worker sends the primary, and how many it keeps unsent. */
const TRAFFIC_MESSAGE_BYTES = 256 * 1024;
const TRAFFIC_IN_FLIGHT = 8;
/** A worker's event loop is busy this long in every period. */
const BUSY_MS = 10;
const BUSY_PERIOD_MS = 20;

if (cluster.isPrimary) {
  const http = createServer();
  setupMaster(http, { loadBalancingMethod: "least-connection" });
  cluster.setupPrimary({ serialization: "advanced" });
  let ready = 0;
  for (let i = 0; i < WORKERS; i++) {
    cluster.fork().on("message", (message) => {
      if (message?.type !== "harness:ready" || ++ready < WORKERS) return;
      http.listen(0, "127.0.0.1", () => console.log(`listening ${http.address().port}`));
    });
  }
  cluster.on("exit", (worker, code, signal) => {
    console.error(`worker ${worker.process.pid} exited (${signal ?? code})`);
    process.exit(1);
  });
  process.once("SIGTERM", () => {
    for (const worker of Object.values(cluster.workers)) worker.process.kill("SIGKILL");
    process.exit(0);
  });
} else {
  const io = new Server(createServer());
  setupWorker(io);

  const payload = Buffer.alloc(TRAFFIC_MESSAGE_BYTES, 1);
  let inFlight = 0;
  const send = () => {
    while (inFlight < TRAFFIC_IN_FLIGHT && process.connected) {
      inFlight++;
      process.send({ type: "harness:traffic", payload }, () => {
        inFlight--;
        setImmediate(send);
      });
    }
  };
  send();
  setInterval(() => {
    const until = Date.now() + BUSY_MS;
    while (Date.now() < until);
  }, BUSY_PERIOD_MS);

  process.send({ type: "harness:ready" });
}
