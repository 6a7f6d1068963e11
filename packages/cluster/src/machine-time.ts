/**
 * Milliseconds on the machine's monotonic clock (`CLOCK_MONOTONIC` on
 * Linux), which every process of the machine reads alike and no wall-clock
 * change moves. The primary sets announcement deadlines on it and the
 * workers check them: a deadline, never an order (versions give the order).
 */
export function machineTime(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
