import { describePresenceStore } from "@presence/core/testing";
import { describeBindingScenarios } from "@presence/socketio/testing";
import { useRedis } from "./redis-fixture";

const redis = useRedis();

describePresenceStore("redis", { create: () => redis.deployment().store(), numRuns: 30 });

describeBindingScenarios("redis store", {
  createStores: async (count) => {
    const deployment = redis.deployment();
    return Array.from({ length: count }, () => deployment.store());
  },
});
