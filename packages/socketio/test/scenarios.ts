// the scenarios ship as @presence/socketio/testing; the tests here use them from source
export { describeBindingScenarios, wrapStore, type BindingScenarioOptions } from "../src/testing";
