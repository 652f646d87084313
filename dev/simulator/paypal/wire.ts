// The simulator's PayPal objects (Orders v2, Payments v2) in the field order PayPal sends, and ids.

export interface Money {
  currency_code: string;
  value: string;
}

export interface Link {
  href: string;
  rel: string;
  method: string;
}

export interface Capture {
  id: string;
  status: "COMPLETED" | "DECLINED" | "PARTIALLY_REFUNDED" | "PENDING" | "REFUNDED" | "FAILED";
  status_details?: { reason: string };
  amount: Money;
  final_capture: boolean;
  custom_id?: string;
  seller_protection: { status: string };
  supplementary_data: { related_ids: { order_id: string } };
  links: Link[];
  create_time: string;
  update_time: string;
}

export interface PurchaseUnit {
  reference_id: string;
  custom_id?: string;
  amount: Money;
  payments?: { captures: Capture[] };
}

export type CaptureOutcome = "COMPLETED" | "DECLINED" | "PENDING";

export interface Order {
  id: string;
  intent: "CAPTURE";
  status: "CREATED" | "APPROVED" | "VOIDED" | "COMPLETED";
  purchase_units: PurchaseUnit[];
  payer?: { payer_id: string; email_address: string };
  create_time: string;
  update_time?: string;
  links: Link[];
}

export interface Refund {
  id: string;
  status: "CANCELLED" | "FAILED" | "PENDING" | "COMPLETED";
  amount: Money;
  custom_id?: string;
  invoice_id?: string;
  note_to_payer?: string;
  seller_payable_breakdown: { gross_amount: Money; total_refunded_amount: Money };
  links: Link[];
  create_time: string;
  update_time: string;
}

const ALNUM = "ABCDEFGHJKLMNPRSTUVWXY0123456789";

/** PayPal-like ids: 17 upper-case letters and digits. */
export function paypalId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(17));
  return Array.from(bytes, (b) => ALNUM[b % ALNUM.length]).join("");
}

/** RFC 3339 without milliseconds, as PayPal writes times. */
export const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
