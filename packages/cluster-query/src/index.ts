export {
  ClusterQueryStore,
  createClusterQueryStore,
  type ClusterAnswer,
  type ClusterQueryStoreOptions,
} from "./cluster-query-store";
export { NodesUnresponsiveError } from "./errors";
export { MessageType, QUERY_EVENT, type HoldsAnswer, type HoldsQuestion, type QueryRequest, type QueryResponse, type UserEntry } from "./messages";
