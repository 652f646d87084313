// What the gateway simulators share: webhook options and delivery, chaos, injected faults, the
// /_sim config body, the route table and the fetch pipeline, JSON helpers. Import from here.
export { type ChaosOptions, type ChaosStats, parseChaosOptions, seededRandom } from "./chaos.ts";
export { readSimConfig } from "./config.ts";
export {
  type ActiveFault,
  FaultBook,
  type FaultMode,
  type FaultSpec,
  type FaultStatus,
  holdUntilAbort,
  SimulatedConnectionReset,
  simulatedResetResponse,
  withFaults,
} from "./faults.ts";
export { canonical } from "./json.ts";
export { dispatch, simPath, type Surfaces } from "./pipeline.ts";
export {
  type CommonControls,
  commonControls,
  type Route,
  route,
  type RouteMatch,
  Router,
  type SimCall,
} from "./router.ts";
export {
  parseWebhookOptions,
  type SimDeliveryRecord,
  type SimEventRecord,
  WebhookDispatcher,
  type WebhookOptions,
} from "./webhooks.ts";
