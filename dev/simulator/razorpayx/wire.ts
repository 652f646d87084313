// RazorpayX wire objects as the API reference describes them (MARKETPLACE_FACTS 2.5-2.8):
// contacts, fund accounts (bank account, VPA) and payouts, field order as RazorpayX sends them.

export type Json = Record<string, unknown>;

export interface Contact {
  id: string;
  entity: "contact";
  name: string;
  contact: string | null;
  email: string | null;
  type: string | null;
  reference_id: string | null;
  batch_id: null;
  active: boolean;
  notes: Record<string, string>;
  created_at: number;
}

export interface FundAccount {
  id: string;
  entity: "fund_account";
  contact_id: string;
  account_type: "bank_account" | "vpa";
  bank_account?: {
    ifsc: string;
    bank_name: string;
    name: string;
    account_number: string;
    notes: [];
  };
  vpa?: { address: string; username: string; handle: string };
  batch_id: null;
  active: boolean;
  created_at: number;
}

export type PayoutStatus =
  | "pending"
  | "queued"
  | "scheduled"
  | "processing"
  | "processed"
  | "reversed"
  | "cancelled"
  | "rejected"
  | "failed";

export interface Payout {
  id: string;
  entity: "payout";
  fund_account_id: string;
  amount: number;
  currency: "INR";
  notes: Record<string, string>;
  fees: number;
  tax: number;
  status: PayoutStatus;
  purpose: string;
  utr: string | null;
  mode: string;
  reference_id: string | null;
  narration: string | null;
  batch_id: null;
  status_details: { reason: string; description: string; source: string } | null;
  failure_reason: string | null;
  created_at: number;
}
