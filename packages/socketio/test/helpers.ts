// the harness ships in the published testing entry; the tests here use it from source
export * from "../src/testing-harness";
