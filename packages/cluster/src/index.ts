export { createMemoryChannel, type MemoryChannel, type MemoryWorkerChannel, type PrimaryChannel, type WorkerChannel } from "./channel";
export { ClusterStore, createClusterStore, type ClusterStoreOptions } from "./cluster-store";
export { ClusterSetupError } from "./errors";
export { clusterPrimaryChannel, clusterWorkerChannel } from "./ipc";
export {
  MESSAGE_SOURCE,
  MessageType,
  type Announce,
  type DisconnectAnswer,
  type PrimaryEnvelope,
  type Reply,
  type Request,
  type UserEntry,
  type WireError,
  type WorkerEnvelope,
} from "./messages";
export { LIMITS_ENV, PRIMARY_ENV, PresencePrimary, setupPrimary, type ChannelStats, type PrimaryOptions } from "./primary";
