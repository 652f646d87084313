// The /_sim/<gateway>/config body, read the same way by every simulator.
import { type ChaosOptions, parseChaosOptions } from "./chaos.ts";
import { parseWebhookOptions, type WebhookOptions } from "./webhooks.ts";

type Json = Record<string, unknown>;

/**
 * A /_sim/<gateway>/config body, the same for both simulators: everything is validated before
 * anything changes. Absent fields come back undefined (unchanged); webhookUrl null clears it.
 */
export function readSimConfig(body: Json):
  | { problem: { message: string; param: string } }
  | { webhookUrl?: string | null; webhooks?: WebhookOptions; chaos?: ChaosOptions | null } {
  const chaos = "chaos" in body ? parseChaosOptions(body.chaos) : undefined;
  if (chaos && "message" in chaos) return { problem: chaos };
  const url = body.webhook_url;
  if ("webhook_url" in body && url !== null && typeof url !== "string") {
    return { problem: { message: "webhook_url must be a string or null", param: "webhook_url" } };
  }
  return {
    webhookUrl: "webhook_url" in body ? url as string | null : undefined,
    webhooks: "webhooks" in body ? parseWebhookOptions(body.webhooks) : undefined,
    chaos: chaos?.chaos,
  };
}
