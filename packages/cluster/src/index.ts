export { createMemoryChannel, type MemoryChannel, type MemoryWorkerChannel, type PrimaryChannel, type WorkerChannel } from "./channel";
export { ClusterStore, createClusterStore, type ClusterStoreOptions } from "./cluster-store";
export { ClusterSetupError } from "./errors";
export { clusterPrimaryChannel, clusterWorkerChannel } from "./ipc";
export {
  MESSAGE_SOURCE,
  MessageType,
  type Ack,
  type Announce,
  type Assigned,
  type PrimaryEnvelope,
  type Reply,
  type Request,
  type UserEntry,
  type WireError,
  type WorkerEnvelope,
} from "./messages";
export { machineTime } from "./machine-time";
export {
  DEFAULT_ANNOUNCE_TIMEOUT_MS,
  DEFAULT_LEAVE_GRACE_MS,
  LIMITS_ENV,
  PRIMARY_ENV,
  PresencePrimary,
  setupPrimary,
  type ChannelStats,
  type PrimaryOptions,
} from "./primary";
