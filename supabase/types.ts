export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[];

export type Database = {
  "public": {
    Tables: {
      "account_members": {
        Row: {
          "account_id": string;
          "created_at": string;
          "role": string;
          "user_id": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "created_at"?: string;
          "role": string;
          "user_id": string;
        };
        Update: {
          "account_id"?: string;
          "created_at"?: string;
          "role"?: string;
          "user_id"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "account_members_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
        ];
      };
      "accounts": {
        Row: {
          "created_at": string;
          "default_currency": string;
          "entitlement_ends_at": string | null;
          "id": string;
          "is_pro": boolean;
          "name": string;
          "personal_owner_id": string | null;
          "plan": string | null;
        };
        ComputedFields: never;
        Insert: {
          "created_at"?: string;
          "default_currency"?: string;
          "entitlement_ends_at"?: string | null;
          "id"?: string;
          "is_pro"?: boolean;
          "name": string;
          "personal_owner_id"?: string | null;
          "plan"?: string | null;
        };
        Update: {
          "created_at"?: string;
          "default_currency"?: string;
          "entitlement_ends_at"?: string | null;
          "id"?: string;
          "is_pro"?: boolean;
          "name"?: string;
          "personal_owner_id"?: string | null;
          "plan"?: string | null;
        };
        Relationships: [
          {
            foreignKeyName: "accounts_default_currency_fkey";
            columns: ["default_currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "accounts_plan_fkey";
            columns: ["plan"];
            isOneToOne: false;
            referencedRelation: "plans";
            referencedColumns: ["id"];
          },
        ];
      };
      "currencies": {
        Row: {
          "code": string;
          "enabled": boolean;
          "exponent": number;
          "topup_max": number;
          "topup_min": number;
        };
        ComputedFields: never;
        Insert: {
          "code": string;
          "enabled"?: boolean;
          "exponent": number;
          "topup_max": number;
          "topup_min": number;
        };
        Update: {
          "code"?: string;
          "enabled"?: boolean;
          "exponent"?: number;
          "topup_max"?: number;
          "topup_min"?: number;
        };
        Relationships: [];
      };
      "disputes": {
        Row: {
          "account_id": string;
          "amount": number;
          "amount_held": number | null;
          "amount_lost": number;
          "amount_reinstated": number;
          "amount_withdrawn": number;
          "created_at": string;
          "currency": string;
          "entitlement": string | null;
          "evidence_due_by": string | null;
          "fee": number;
          "fee_currency": string | null;
          "funds_withdrawn_at": string | null;
          "gateway": string;
          "gateway_created_at": string | null;
          "gateway_dispute_id": string;
          "gateway_payment_id": string;
          "gateway_status": string;
          "id": string;
          "last_event_at": string | null;
          "order_id": string;
          "phase": string;
          "reason": string | null;
          "resolved_at": string | null;
          "shortfall": number;
          "shortfall_covered": number;
          "status": string;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "amount": number;
          "amount_held"?: never;
          "amount_lost"?: number;
          "amount_reinstated"?: number;
          "amount_withdrawn"?: number;
          "created_at"?: string;
          "currency": string;
          "entitlement"?: string | null;
          "evidence_due_by"?: string | null;
          "fee"?: number;
          "fee_currency"?: string | null;
          "funds_withdrawn_at"?: string | null;
          "gateway": string;
          "gateway_created_at"?: string | null;
          "gateway_dispute_id": string;
          "gateway_payment_id": string;
          "gateway_status": string;
          "id"?: string;
          "last_event_at"?: string | null;
          "order_id": string;
          "phase": string;
          "reason"?: string | null;
          "resolved_at"?: string | null;
          "shortfall"?: number;
          "shortfall_covered"?: number;
          "status": string;
          "updated_at"?: string;
        };
        Update: {
          "account_id"?: string;
          "amount"?: number;
          "amount_held"?: never;
          "amount_lost"?: number;
          "amount_reinstated"?: number;
          "amount_withdrawn"?: number;
          "created_at"?: string;
          "currency"?: string;
          "entitlement"?: string | null;
          "evidence_due_by"?: string | null;
          "fee"?: number;
          "fee_currency"?: string | null;
          "funds_withdrawn_at"?: string | null;
          "gateway"?: string;
          "gateway_created_at"?: string | null;
          "gateway_dispute_id"?: string;
          "gateway_payment_id"?: string;
          "gateway_status"?: string;
          "id"?: string;
          "last_event_at"?: string | null;
          "order_id"?: string;
          "phase"?: string;
          "reason"?: string | null;
          "resolved_at"?: string | null;
          "shortfall"?: number;
          "shortfall_covered"?: number;
          "status"?: string;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "disputes_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "disputes_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "disputes_fee_currency_fkey";
            columns: ["fee_currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "disputes_order_id_fkey";
            columns: ["order_id"];
            isOneToOne: false;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
        ];
      };
      "engagements": {
        Row: {
          "amount": number;
          "auto_complete_at": string | null;
          "auto_complete_hours": number;
          "auto_completed": boolean;
          "cancel_reason": string | null;
          "canceled_at": string | null;
          "completed_at": string | null;
          "created_at": string;
          "created_by": string;
          "currency": string;
          "dispute_reason": string | null;
          "disputed_at": string | null;
          "fee_amount": number | null;
          "funded_at": string | null;
          "funding_order_id": string | null;
          "hold_hours": number;
          "id": string;
          "idempotency_key": string | null;
          "payee_account_id": string;
          "payee_amount": number | null;
          "payee_share_bps": number | null;
          "payer_account_id": string;
          "penalty_amount": number | null;
          "penalty_bps": (number)[];
          "platform_fee_bps": number;
          "rating": number | null;
          "reference": string | null;
          "release_at": string | null;
          "request_hash": string | null;
          "settled_at": string | null;
          "status": string;
          "title": string | null;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "amount": number;
          "auto_complete_at"?: string | null;
          "auto_complete_hours": number;
          "auto_completed"?: boolean;
          "cancel_reason"?: string | null;
          "canceled_at"?: string | null;
          "completed_at"?: string | null;
          "created_at"?: string;
          "created_by": string;
          "currency": string;
          "dispute_reason"?: string | null;
          "disputed_at"?: string | null;
          "fee_amount"?: number | null;
          "funded_at"?: string | null;
          "funding_order_id"?: string | null;
          "hold_hours"?: number;
          "id"?: string;
          "idempotency_key"?: string | null;
          "payee_account_id": string;
          "payee_amount"?: number | null;
          "payee_share_bps"?: number | null;
          "payer_account_id": string;
          "penalty_amount"?: number | null;
          "penalty_bps": (number)[];
          "platform_fee_bps": number;
          "rating"?: number | null;
          "reference"?: string | null;
          "release_at"?: string | null;
          "request_hash"?: string | null;
          "settled_at"?: string | null;
          "status"?: string;
          "title"?: string | null;
          "updated_at"?: string;
        };
        Update: {
          "amount"?: number;
          "auto_complete_at"?: string | null;
          "auto_complete_hours"?: number;
          "auto_completed"?: boolean;
          "cancel_reason"?: string | null;
          "canceled_at"?: string | null;
          "completed_at"?: string | null;
          "created_at"?: string;
          "created_by"?: string;
          "currency"?: string;
          "dispute_reason"?: string | null;
          "disputed_at"?: string | null;
          "fee_amount"?: number | null;
          "funded_at"?: string | null;
          "funding_order_id"?: string | null;
          "hold_hours"?: number;
          "id"?: string;
          "idempotency_key"?: string | null;
          "payee_account_id"?: string;
          "payee_amount"?: number | null;
          "payee_share_bps"?: number | null;
          "payer_account_id"?: string;
          "penalty_amount"?: number | null;
          "penalty_bps"?: (number)[];
          "platform_fee_bps"?: number;
          "rating"?: number | null;
          "reference"?: string | null;
          "release_at"?: string | null;
          "request_hash"?: string | null;
          "settled_at"?: string | null;
          "status"?: string;
          "title"?: string | null;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "engagements_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "engagements_funding_order_id_fkey";
            columns: ["funding_order_id"];
            isOneToOne: true;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "engagements_payee_account_id_fkey";
            columns: ["payee_account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "engagements_payer_account_id_fkey";
            columns: ["payer_account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
        ];
      };
      "escrow_policies": {
        Row: {
          "auto_complete_hours": number;
          "currency": string | null;
          "penalty_bps_rating_1": number;
          "penalty_bps_rating_2": number;
          "penalty_bps_rating_3": number;
          "penalty_bps_rating_4": number;
          "penalty_bps_rating_5": number;
          "platform_fee_bps": number;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "auto_complete_hours"?: number;
          "currency"?: string | null;
          "penalty_bps_rating_1"?: number;
          "penalty_bps_rating_2"?: number;
          "penalty_bps_rating_3"?: number;
          "penalty_bps_rating_4"?: number;
          "penalty_bps_rating_5"?: number;
          "platform_fee_bps"?: number;
          "updated_at"?: string;
        };
        Update: {
          "auto_complete_hours"?: number;
          "currency"?: string | null;
          "penalty_bps_rating_1"?: number;
          "penalty_bps_rating_2"?: number;
          "penalty_bps_rating_3"?: number;
          "penalty_bps_rating_4"?: number;
          "penalty_bps_rating_5"?: number;
          "platform_fee_bps"?: number;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "escrow_policies_currency_fkey";
            columns: ["currency"];
            isOneToOne: true;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
        ];
      };
      "gateway_customers": {
        Row: {
          "account_id": string;
          "created_at": string;
          "customer_id": string;
          "gateway": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "created_at"?: string;
          "customer_id": string;
          "gateway": string;
        };
        Update: {
          "account_id"?: string;
          "created_at"?: string;
          "customer_id"?: string;
          "gateway"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "gateway_customers_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
        ];
      };
      "gateway_discrepancies": {
        Row: {
          "detail": string | null;
          "first_seen": string;
          "gateway": string;
          "gateway_amount": number | null;
          "gateway_currency": string | null;
          "gateway_object_id": string;
          "gateway_order_id": string | null;
          "gateway_payment_id": string | null;
          "gateway_refund_id": string | null;
          "gateway_status": string | null;
          "id": number;
          "kind": string;
          "last_seen": string;
          "order_id": string | null;
          "payout_id": string | null;
          "refund_id": string | null;
          "reopened_count": number;
          "resolution": string | null;
          "resolved_at": string | null;
          "settle_amount": number | null;
          "settle_currency": string | null;
          "settle_status": string | null;
          "times_seen": number;
        };
        ComputedFields: never;
        Insert: {
          "detail"?: string | null;
          "first_seen"?: string;
          "gateway": string;
          "gateway_amount"?: number | null;
          "gateway_currency"?: string | null;
          "gateway_object_id": string;
          "gateway_order_id"?: string | null;
          "gateway_payment_id"?: string | null;
          "gateway_refund_id"?: string | null;
          "gateway_status"?: string | null;
          "id"?: never;
          "kind": string;
          "last_seen"?: string;
          "order_id"?: string | null;
          "payout_id"?: string | null;
          "refund_id"?: string | null;
          "reopened_count"?: number;
          "resolution"?: string | null;
          "resolved_at"?: string | null;
          "settle_amount"?: number | null;
          "settle_currency"?: string | null;
          "settle_status"?: string | null;
          "times_seen"?: number;
        };
        Update: {
          "detail"?: string | null;
          "first_seen"?: string;
          "gateway"?: string;
          "gateway_amount"?: number | null;
          "gateway_currency"?: string | null;
          "gateway_object_id"?: string;
          "gateway_order_id"?: string | null;
          "gateway_payment_id"?: string | null;
          "gateway_refund_id"?: string | null;
          "gateway_status"?: string | null;
          "id"?: never;
          "kind"?: string;
          "last_seen"?: string;
          "order_id"?: string | null;
          "payout_id"?: string | null;
          "refund_id"?: string | null;
          "reopened_count"?: number;
          "resolution"?: string | null;
          "resolved_at"?: string | null;
          "settle_amount"?: number | null;
          "settle_currency"?: string | null;
          "settle_status"?: string | null;
          "times_seen"?: number;
        };
        Relationships: [
          {
            foreignKeyName: "gateway_discrepancies_order_id_fkey";
            columns: ["order_id"];
            isOneToOne: false;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "gateway_discrepancies_payout_id_fkey";
            columns: ["payout_id"];
            isOneToOne: false;
            referencedRelation: "payouts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "gateway_discrepancies_refund_id_fkey";
            columns: ["refund_id"];
            isOneToOne: false;
            referencedRelation: "refunds";
            referencedColumns: ["id"];
          },
        ];
      };
      "gateway_refund_holds": {
        Row: {
          "amount": number | null;
          "created_at": string;
          "currency": string | null;
          "detail": string | null;
          "effect": NonNullable<Json>;
          "gateway": string;
          "gateway_payment_id": string | null;
          "gateway_refund_id": string;
          "order_id": string;
          "reason": string;
          "refund_id": string | null;
          "resolved_at": string | null;
          "status": string;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "amount"?: number | null;
          "created_at"?: string;
          "currency"?: string | null;
          "detail"?: string | null;
          "effect": NonNullable<Json>;
          "gateway": string;
          "gateway_payment_id"?: never;
          "gateway_refund_id": string;
          "order_id": string;
          "reason": string;
          "refund_id"?: string | null;
          "resolved_at"?: string | null;
          "status": string;
          "updated_at"?: string;
        };
        Update: {
          "amount"?: number | null;
          "created_at"?: string;
          "currency"?: string | null;
          "detail"?: string | null;
          "effect"?: NonNullable<Json>;
          "gateway"?: string;
          "gateway_payment_id"?: never;
          "gateway_refund_id"?: string;
          "order_id"?: string;
          "reason"?: string;
          "refund_id"?: string | null;
          "resolved_at"?: string | null;
          "status"?: string;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "gateway_refund_holds_order_id_fkey";
            columns: ["order_id"];
            isOneToOne: false;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "gateway_refund_holds_refund_id_fkey";
            columns: ["refund_id"];
            isOneToOne: false;
            referencedRelation: "refunds";
            referencedColumns: ["id"];
          },
        ];
      };
      "ledger_entries": {
        Row: {
          "account_id": string | null;
          "amount": number;
          "created_at": string;
          "currency": string;
          "id": number;
          "system_account": string | null;
          "transaction_id": string;
          "wallet_id": string | null;
        };
        ComputedFields: never;
        Insert: {
          "account_id"?: string | null;
          "amount": number;
          "created_at"?: string;
          "currency": string;
          "id"?: never;
          "system_account"?: string | null;
          "transaction_id": string;
          "wallet_id"?: string | null;
        };
        Update: {
          "account_id"?: string | null;
          "amount"?: number;
          "created_at"?: string;
          "currency"?: string;
          "id"?: never;
          "system_account"?: string | null;
          "transaction_id"?: string;
          "wallet_id"?: string | null;
        };
        Relationships: [];
      };
      "ledger_transactions": {
        Row: {
          "created_at": string;
          "description": string | null;
          "id": string;
          "idempotency_key": string;
          "kind": string;
          "order_id": string | null;
        };
        ComputedFields: never;
        Insert: {
          "created_at"?: string;
          "description"?: string | null;
          "id"?: string;
          "idempotency_key": string;
          "kind": string;
          "order_id"?: string | null;
        };
        Update: {
          "created_at"?: string;
          "description"?: string | null;
          "id"?: string;
          "idempotency_key"?: string;
          "kind"?: string;
          "order_id"?: string | null;
        };
        Relationships: [];
      };
      "orders": {
        Row: {
          "account_id": string;
          "amount": number;
          "amount_refunded": number;
          "created_at": string;
          "created_by": string;
          "currency": string;
          "dispute_status": string | null;
          "engagement_id": string | null;
          "failure_code": string | null;
          "failure_reason": string | null;
          "gateway": string;
          "gateway_attempts": number;
          "gateway_claim_id": string | null;
          "gateway_claimed_until": string | null;
          "gateway_order_id": string | null;
          "gateway_payment_id": string | null;
          "id": string;
          "idempotency_key": string | null;
          "last_gateway_error": string | null;
          "paid_at": string | null;
          "plan_id": string | null;
          "product_id": string | null;
          "purpose": string;
          "reconcile_after": string | null;
          "reconcile_attempts": number;
          "reconcile_claim": string | null;
          "request_hash": string | null;
          "status": string;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "amount": number;
          "amount_refunded"?: number;
          "created_at"?: string;
          "created_by": string;
          "currency": string;
          "dispute_status"?: string | null;
          "engagement_id"?: string | null;
          "failure_code"?: string | null;
          "failure_reason"?: string | null;
          "gateway": string;
          "gateway_attempts"?: number;
          "gateway_claim_id"?: string | null;
          "gateway_claimed_until"?: string | null;
          "gateway_order_id"?: string | null;
          "gateway_payment_id"?: string | null;
          "id"?: string;
          "idempotency_key"?: string | null;
          "last_gateway_error"?: string | null;
          "paid_at"?: string | null;
          "plan_id"?: string | null;
          "product_id"?: string | null;
          "purpose": string;
          "reconcile_after"?: string | null;
          "reconcile_attempts"?: number;
          "reconcile_claim"?: string | null;
          "request_hash"?: string | null;
          "status"?: string;
          "updated_at"?: string;
        };
        Update: {
          "account_id"?: string;
          "amount"?: number;
          "amount_refunded"?: number;
          "created_at"?: string;
          "created_by"?: string;
          "currency"?: string;
          "dispute_status"?: string | null;
          "engagement_id"?: string | null;
          "failure_code"?: string | null;
          "failure_reason"?: string | null;
          "gateway"?: string;
          "gateway_attempts"?: number;
          "gateway_claim_id"?: string | null;
          "gateway_claimed_until"?: string | null;
          "gateway_order_id"?: string | null;
          "gateway_payment_id"?: string | null;
          "id"?: string;
          "idempotency_key"?: string | null;
          "last_gateway_error"?: string | null;
          "paid_at"?: string | null;
          "plan_id"?: string | null;
          "product_id"?: string | null;
          "purpose"?: string;
          "reconcile_after"?: string | null;
          "reconcile_attempts"?: number;
          "reconcile_claim"?: string | null;
          "request_hash"?: string | null;
          "status"?: string;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "orders_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "orders_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "orders_engagement_id_fkey";
            columns: ["engagement_id"];
            isOneToOne: false;
            referencedRelation: "engagements";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "orders_plan_id_fkey";
            columns: ["plan_id"];
            isOneToOne: false;
            referencedRelation: "plans";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "orders_product_id_fkey";
            columns: ["product_id"];
            isOneToOne: false;
            referencedRelation: "products";
            referencedColumns: ["id"];
          },
        ];
      };
      "outbox_deliveries": {
        Row: {
          "attempts": number;
          "claim_token": string | null;
          "claimed_at": string | null;
          "created_at": string;
          "delivered_at": string | null;
          "event_id": string;
          "id": number;
          "last_attempt_at": string | null;
          "last_error": string | null;
          "last_http_status": number | null;
          "next_attempt_at": string;
          "replays": number;
          "status": string;
          "subscriber_id": string;
        };
        ComputedFields: never;
        Insert: {
          "attempts"?: number;
          "claim_token"?: string | null;
          "claimed_at"?: string | null;
          "created_at"?: string;
          "delivered_at"?: string | null;
          "event_id": string;
          "id"?: never;
          "last_attempt_at"?: string | null;
          "last_error"?: string | null;
          "last_http_status"?: number | null;
          "next_attempt_at"?: string;
          "replays"?: number;
          "status"?: string;
          "subscriber_id": string;
        };
        Update: {
          "attempts"?: number;
          "claim_token"?: string | null;
          "claimed_at"?: string | null;
          "created_at"?: string;
          "delivered_at"?: string | null;
          "event_id"?: string;
          "id"?: never;
          "last_attempt_at"?: string | null;
          "last_error"?: string | null;
          "last_http_status"?: number | null;
          "next_attempt_at"?: string;
          "replays"?: number;
          "status"?: string;
          "subscriber_id"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "outbox_deliveries_event_id_fkey";
            columns: ["event_id"];
            isOneToOne: false;
            referencedRelation: "outbox_events";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "outbox_deliveries_subscriber_id_fkey";
            columns: ["subscriber_id"];
            isOneToOne: false;
            referencedRelation: "outbox_subscribers";
            referencedColumns: ["id"];
          },
        ];
      };
      "outbox_events": {
        Row: {
          "account_id": string;
          "created_at": string;
          "id": string;
          "payload": NonNullable<Json>;
          "subject_id": string;
          "subject_type": string;
          "type": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "created_at"?: string;
          "id"?: string;
          "payload": NonNullable<Json>;
          "subject_id": string;
          "subject_type": string;
          "type": string;
        };
        Update: {
          "account_id"?: string;
          "created_at"?: string;
          "id"?: string;
          "payload"?: NonNullable<Json>;
          "subject_id"?: string;
          "subject_type"?: string;
          "type"?: string;
        };
        Relationships: [];
      };
      "outbox_subscribers": {
        Row: {
          "active": boolean;
          "created_at": string;
          "event_types": (string)[];
          "id": string;
          "name": string;
          "secret": string;
          "updated_at": string;
          "url": string;
        };
        ComputedFields: never;
        Insert: {
          "active"?: boolean;
          "created_at"?: string;
          "event_types"?: (string)[];
          "id"?: string;
          "name": string;
          "secret"?: string;
          "updated_at"?: string;
          "url": string;
        };
        Update: {
          "active"?: boolean;
          "created_at"?: string;
          "event_types"?: (string)[];
          "id"?: string;
          "name"?: string;
          "secret"?: string;
          "updated_at"?: string;
          "url"?: string;
        };
        Relationships: [];
      };
      "payment_methods": {
        Row: {
          "account_id": string;
          "brand": string | null;
          "created_at": string;
          "exp_month": number | null;
          "exp_year": number | null;
          "gateway": string;
          "gateway_payment_method_id": string;
          "id": string;
          "is_default": boolean;
          "last4": string | null;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "brand"?: string | null;
          "created_at"?: string;
          "exp_month"?: number | null;
          "exp_year"?: number | null;
          "gateway"?: string;
          "gateway_payment_method_id": string;
          "id"?: string;
          "is_default"?: boolean;
          "last4"?: string | null;
          "updated_at"?: string;
        };
        Update: {
          "account_id"?: string;
          "brand"?: string | null;
          "created_at"?: string;
          "exp_month"?: number | null;
          "exp_year"?: number | null;
          "gateway"?: string;
          "gateway_payment_method_id"?: string;
          "id"?: string;
          "is_default"?: boolean;
          "last4"?: string | null;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "payment_methods_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
        ];
      };
      "payout_accounts": {
        Row: {
          "account_id": string;
          "created_at": string;
          "created_by": string | null;
          "disabled_at": string | null;
          "display": string;
          "gateway": string;
          "gateway_account_id": string;
          "gateway_contact_id": string | null;
          "id": string;
          "last4": string | null;
          "status": string;
          "status_event_at": string | null;
          "type": string;
          "updated_at": string;
          "vpa_handle": string | null;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "created_at"?: string;
          "created_by"?: string | null;
          "disabled_at"?: string | null;
          "display": string;
          "gateway": string;
          "gateway_account_id": string;
          "gateway_contact_id"?: string | null;
          "id"?: string;
          "last4"?: string | null;
          "status": string;
          "status_event_at"?: string | null;
          "type": string;
          "updated_at"?: string;
          "vpa_handle"?: string | null;
        };
        Update: {
          "account_id"?: string;
          "created_at"?: string;
          "created_by"?: string | null;
          "disabled_at"?: string | null;
          "display"?: string;
          "gateway"?: string;
          "gateway_account_id"?: string;
          "gateway_contact_id"?: string | null;
          "id"?: string;
          "last4"?: string | null;
          "status"?: string;
          "status_event_at"?: string | null;
          "type"?: string;
          "updated_at"?: string;
          "vpa_handle"?: string | null;
        };
        Relationships: [
          {
            foreignKeyName: "payout_accounts_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
        ];
      };
      "payout_policies": {
        Row: {
          "account_id": string | null;
          "allow_topup_balance": boolean;
          "created_at": string;
          "currency": string;
          "daily_limit": number;
          "fee_bps": number;
          "fee_flat": number;
          "id": string;
          "min_amount": number;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id"?: string | null;
          "allow_topup_balance"?: boolean;
          "created_at"?: string;
          "currency": string;
          "daily_limit": number;
          "fee_bps"?: number;
          "fee_flat"?: number;
          "id"?: string;
          "min_amount": number;
          "updated_at"?: string;
        };
        Update: {
          "account_id"?: string | null;
          "allow_topup_balance"?: boolean;
          "created_at"?: string;
          "currency"?: string;
          "daily_limit"?: number;
          "fee_bps"?: number;
          "fee_flat"?: number;
          "id"?: string;
          "min_amount"?: number;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "payout_policies_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "payout_policies_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
        ];
      };
      "payouts": {
        Row: {
          "account_id": string;
          "amount": number;
          "created_at": string;
          "created_by": string | null;
          "currency": string;
          "failure_reason": string | null;
          "fee": number;
          "gateway": string;
          "gateway_payout_id": string | null;
          "gateway_status": string | null;
          "id": string;
          "idempotency_key": string | null;
          "last_send_error": string | null;
          "payout_account_id": string;
          "processed_at": string | null;
          "request_hash": string;
          "returned_at": string | null;
          "send_attempts": number;
          "sent_at": string | null;
          "status": string;
          "updated_at": string;
          "wallet_id": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "amount": number;
          "created_at"?: string;
          "created_by"?: string | null;
          "currency": string;
          "failure_reason"?: string | null;
          "fee": number;
          "gateway": string;
          "gateway_payout_id"?: string | null;
          "gateway_status"?: string | null;
          "id"?: string;
          "idempotency_key"?: string | null;
          "last_send_error"?: string | null;
          "payout_account_id": string;
          "processed_at"?: string | null;
          "request_hash": string;
          "returned_at"?: string | null;
          "send_attempts"?: number;
          "sent_at"?: string | null;
          "status"?: string;
          "updated_at"?: string;
          "wallet_id": string;
        };
        Update: {
          "account_id"?: string;
          "amount"?: number;
          "created_at"?: string;
          "created_by"?: string | null;
          "currency"?: string;
          "failure_reason"?: string | null;
          "fee"?: number;
          "gateway"?: string;
          "gateway_payout_id"?: string | null;
          "gateway_status"?: string | null;
          "id"?: string;
          "idempotency_key"?: string | null;
          "last_send_error"?: string | null;
          "payout_account_id"?: string;
          "processed_at"?: string | null;
          "request_hash"?: string;
          "returned_at"?: string | null;
          "send_attempts"?: number;
          "sent_at"?: string | null;
          "status"?: string;
          "updated_at"?: string;
          "wallet_id"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "payouts_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "payouts_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "payouts_payout_account_id_fkey";
            columns: ["payout_account_id"];
            isOneToOne: false;
            referencedRelation: "payout_accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "payouts_wallet_id_fkey";
            columns: ["wallet_id"];
            isOneToOne: false;
            referencedRelation: "wallets";
            referencedColumns: ["id"];
          },
        ];
      };
      "plans": {
        Row: {
          "active": boolean;
          "amount": number;
          "billing_interval": string;
          "created_at": string;
          "currency": string;
          "dispute_policy": string;
          "id": string;
          "interval_count": number;
          "name": string;
          "refund_window_days": number;
        };
        ComputedFields: never;
        Insert: {
          "active"?: boolean;
          "amount": number;
          "billing_interval": string;
          "created_at"?: string;
          "currency": string;
          "dispute_policy"?: string;
          "id": string;
          "interval_count"?: number;
          "name": string;
          "refund_window_days"?: number;
        };
        Update: {
          "active"?: boolean;
          "amount"?: number;
          "billing_interval"?: string;
          "created_at"?: string;
          "currency"?: string;
          "dispute_policy"?: string;
          "id"?: string;
          "interval_count"?: number;
          "name"?: string;
          "refund_window_days"?: number;
        };
        Relationships: [
          {
            foreignKeyName: "plans_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
        ];
      };
      "products": {
        Row: {
          "active": boolean;
          "amount": number;
          "created_at": string;
          "currency": string;
          "id": string;
          "name": string;
          "refund_window_days": number;
        };
        ComputedFields: never;
        Insert: {
          "active"?: boolean;
          "amount": number;
          "created_at"?: string;
          "currency": string;
          "id": string;
          "name": string;
          "refund_window_days"?: number;
        };
        Update: {
          "active"?: boolean;
          "amount"?: number;
          "created_at"?: string;
          "currency"?: string;
          "id"?: string;
          "name"?: string;
          "refund_window_days"?: number;
        };
        Relationships: [
          {
            foreignKeyName: "products_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
        ];
      };
      "refunds": {
        Row: {
          "account_id": string;
          "amount": number;
          "created_at": string;
          "currency": string;
          "failed_at": string | null;
          "failure_reason": string | null;
          "gateway": string;
          "gateway_attempts": number;
          "gateway_payment_id": string;
          "gateway_refund_id": string | null;
          "id": string;
          "idempotency_key": string | null;
          "last_gateway_error": string | null;
          "order_id": string;
          "origin": string | null;
          "period_cut": string | null;
          "processed_at": string | null;
          "reason": string | null;
          "request_hash": string | null;
          "requested_by": string | null;
          "shortfall": number;
          "source": string;
          "status": string;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "amount": number;
          "created_at"?: string;
          "currency": string;
          "failed_at"?: string | null;
          "failure_reason"?: string | null;
          "gateway": string;
          "gateway_attempts"?: number;
          "gateway_payment_id": string;
          "gateway_refund_id"?: string | null;
          "id"?: string;
          "idempotency_key"?: string | null;
          "last_gateway_error"?: string | null;
          "order_id": string;
          "origin"?: never;
          "period_cut"?: string | null;
          "processed_at"?: string | null;
          "reason"?: string | null;
          "request_hash"?: string | null;
          "requested_by"?: string | null;
          "shortfall"?: number;
          "source": string;
          "status"?: string;
          "updated_at"?: string;
        };
        Update: {
          "account_id"?: string;
          "amount"?: number;
          "created_at"?: string;
          "currency"?: string;
          "failed_at"?: string | null;
          "failure_reason"?: string | null;
          "gateway"?: string;
          "gateway_attempts"?: number;
          "gateway_payment_id"?: string;
          "gateway_refund_id"?: string | null;
          "id"?: string;
          "idempotency_key"?: string | null;
          "last_gateway_error"?: string | null;
          "order_id"?: string;
          "origin"?: never;
          "period_cut"?: string | null;
          "processed_at"?: string | null;
          "reason"?: string | null;
          "request_hash"?: string | null;
          "requested_by"?: string | null;
          "shortfall"?: number;
          "source"?: string;
          "status"?: string;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "refunds_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "refunds_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "refunds_order_id_fkey";
            columns: ["order_id"];
            isOneToOne: false;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
        ];
      };
      "subscription_periods": {
        Row: {
          "account_id": string;
          "created_at": string;
          "id": number;
          "order_id": string;
          "period_end": string;
          "period_start": string;
          "plan_id": string;
          "revoked_at": string | null;
          "subscription_id": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "created_at"?: string;
          "id"?: never;
          "order_id": string;
          "period_end": string;
          "period_start": string;
          "plan_id": string;
          "revoked_at"?: string | null;
          "subscription_id": string;
        };
        Update: {
          "account_id"?: string;
          "created_at"?: string;
          "id"?: never;
          "order_id"?: string;
          "period_end"?: string;
          "period_start"?: string;
          "plan_id"?: string;
          "revoked_at"?: string | null;
          "subscription_id"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "subscription_periods_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "subscription_periods_order_id_fkey";
            columns: ["order_id"];
            isOneToOne: true;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "subscription_periods_plan_id_fkey";
            columns: ["plan_id"];
            isOneToOne: false;
            referencedRelation: "plans";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "subscription_periods_subscription_id_fkey";
            columns: ["subscription_id"];
            isOneToOne: false;
            referencedRelation: "subscriptions";
            referencedColumns: ["id"];
          },
        ];
      };
      "subscriptions": {
        Row: {
          "account_id": string;
          "cancel_at_period_end": boolean;
          "canceled_at": string | null;
          "created_at": string;
          "current_period_end": string;
          "current_period_start": string;
          "id": string;
          "plan_id": string;
          "status": string;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "cancel_at_period_end"?: boolean;
          "canceled_at"?: string | null;
          "created_at"?: string;
          "current_period_end": string;
          "current_period_start": string;
          "id"?: string;
          "plan_id": string;
          "status": string;
          "updated_at"?: string;
        };
        Update: {
          "account_id"?: string;
          "cancel_at_period_end"?: boolean;
          "canceled_at"?: string | null;
          "created_at"?: string;
          "current_period_end"?: string;
          "current_period_start"?: string;
          "id"?: string;
          "plan_id"?: string;
          "status"?: string;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "subscriptions_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: true;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "subscriptions_plan_id_fkey";
            columns: ["plan_id"];
            isOneToOne: false;
            referencedRelation: "plans";
            referencedColumns: ["id"];
          },
        ];
      };
      "wallet_charge_refunds": {
        Row: {
          "account_id": string;
          "amount": number;
          "charge_id": string;
          "created_at": string;
          "currency": string;
          "id": string;
          "idempotency_key": string | null;
          "request_hash": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "amount": number;
          "charge_id": string;
          "created_at"?: string;
          "currency": string;
          "id"?: string;
          "idempotency_key"?: string | null;
          "request_hash": string;
        };
        Update: {
          "account_id"?: string;
          "amount"?: number;
          "charge_id"?: string;
          "created_at"?: string;
          "currency"?: string;
          "id"?: string;
          "idempotency_key"?: string | null;
          "request_hash"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "wallet_charge_refunds_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "wallet_charge_refunds_charge_id_fkey";
            columns: ["charge_id"];
            isOneToOne: false;
            referencedRelation: "wallet_charges";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "wallet_charge_refunds_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
        ];
      };
      "wallet_charges": {
        Row: {
          "account_id": string;
          "amount": number;
          "amount_captured": number;
          "amount_refunded": number;
          "captured_at": string | null;
          "created_at": string;
          "currency": string;
          "description": string | null;
          "expires_at": string | null;
          "id": string;
          "idempotency_key": string;
          "metadata": NonNullable<Json>;
          "reference": string | null;
          "release_reason": string | null;
          "released_at": string | null;
          "request_hash": string;
          "status": string;
          "updated_at": string;
          "wallet_id": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "amount": number;
          "amount_captured"?: number;
          "amount_refunded"?: number;
          "captured_at"?: string | null;
          "created_at"?: string;
          "currency": string;
          "description"?: string | null;
          "expires_at"?: string | null;
          "id"?: string;
          "idempotency_key": string;
          "metadata"?: NonNullable<Json>;
          "reference"?: string | null;
          "release_reason"?: string | null;
          "released_at"?: string | null;
          "request_hash": string;
          "status": string;
          "updated_at"?: string;
          "wallet_id": string;
        };
        Update: {
          "account_id"?: string;
          "amount"?: number;
          "amount_captured"?: number;
          "amount_refunded"?: number;
          "captured_at"?: string | null;
          "created_at"?: string;
          "currency"?: string;
          "description"?: string | null;
          "expires_at"?: string | null;
          "id"?: string;
          "idempotency_key"?: string;
          "metadata"?: NonNullable<Json>;
          "reference"?: string | null;
          "release_reason"?: string | null;
          "released_at"?: string | null;
          "request_hash"?: string;
          "status"?: string;
          "updated_at"?: string;
          "wallet_id"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "wallet_charges_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "wallet_charges_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "wallet_charges_wallet_id_fkey";
            columns: ["wallet_id"];
            isOneToOne: false;
            referencedRelation: "wallets";
            referencedColumns: ["id"];
          },
        ];
      };
      "wallets": {
        Row: {
          "account_id": string;
          "balance": number;
          "created_at": string;
          "currency": string;
          "id": string;
          "updated_at": string;
        };
        ComputedFields: never;
        Insert: {
          "account_id": string;
          "balance"?: number;
          "created_at"?: string;
          "currency": string;
          "id"?: string;
          "updated_at"?: string;
        };
        Update: {
          "account_id"?: string;
          "balance"?: number;
          "created_at"?: string;
          "currency"?: string;
          "id"?: string;
          "updated_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "wallets_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "wallets_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
        ];
      };
      "webhook_events": {
        Row: {
          "amount": number | null;
          "attempts": number;
          "body_key": string | null;
          "currency": string | null;
          "detail": string | null;
          "effect": Json | null;
          "event_id": string;
          "event_type": string;
          "failure_code": string | null;
          "failure_reason": string | null;
          "gateway": string;
          "gateway_order_id": string | null;
          "gateway_payment_id": string | null;
          "id": number;
          "kind": string | null;
          "occurred_at": string | null;
          "order_id": string | null;
          "outcome": string;
          "processed_at": string | null;
          "raw_body": string;
          "received_at": string;
        };
        ComputedFields: never;
        Insert: {
          "amount"?: number | null;
          "attempts"?: number;
          "body_key"?: string | null;
          "currency"?: string | null;
          "detail"?: string | null;
          "effect"?: Json | null;
          "event_id": string;
          "event_type": string;
          "failure_code"?: string | null;
          "failure_reason"?: string | null;
          "gateway": string;
          "gateway_order_id"?: string | null;
          "gateway_payment_id"?: string | null;
          "id"?: never;
          "kind"?: string | null;
          "occurred_at"?: string | null;
          "order_id"?: string | null;
          "outcome"?: string;
          "processed_at"?: string | null;
          "raw_body": string;
          "received_at"?: string;
        };
        Update: {
          "amount"?: number | null;
          "attempts"?: number;
          "body_key"?: string | null;
          "currency"?: string | null;
          "detail"?: string | null;
          "effect"?: Json | null;
          "event_id"?: string;
          "event_type"?: string;
          "failure_code"?: string | null;
          "failure_reason"?: string | null;
          "gateway"?: string;
          "gateway_order_id"?: string | null;
          "gateway_payment_id"?: string | null;
          "id"?: never;
          "kind"?: string | null;
          "occurred_at"?: string | null;
          "order_id"?: string | null;
          "outcome"?: string;
          "processed_at"?: string | null;
          "raw_body"?: string;
          "received_at"?: string;
        };
        Relationships: [
          {
            foreignKeyName: "webhook_events_order_id_fkey";
            columns: ["order_id"];
            isOneToOne: false;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
        ];
      };
    };
    Views: {
      "dispute_stats": {
        Row: {
          "amount_disputed": number | null;
          "amount_lost": number | null;
          "currency": string;
          "day": string | null;
          "dispute_rate": number | null;
          "disputes_lost": number | null;
          "disputes_opened": number | null;
          "disputes_won": number | null;
          "gateway": string;
          "inquiries": number | null;
          "orders_paid": number | null;
        };
        ComputedFields: never;
        Relationships: [];
      };
      "escrow_stats": {
        Row: {
          "currency": string;
          "day": string | null;
          "engagements_canceled": number | null;
          "engagements_created": number | null;
          "engagements_disputed": number | null;
          "engagements_funded": number | null;
          "engagements_settled": number | null;
          "held": number | null;
          "penalties": number | null;
          "platform_revenue": number | null;
          "released_to_payees": number | null;
        };
        ComputedFields: never;
        Relationships: [];
      };
      "gateway_discrepancies_open": {
        Row: {
          "detail": string | null;
          "first_seen": string;
          "gateway": string;
          "gateway_amount": number | null;
          "gateway_currency": string | null;
          "gateway_object_id": string;
          "gateway_payment_id": string | null;
          "gateway_refund_id": string | null;
          "gateway_status": string | null;
          "id": number;
          "kind": string;
          "last_seen": string;
          "order_id": string | null;
          "payout_id": string | null;
          "refund_id": string | null;
          "reopened_count": number;
          "settle_amount": number | null;
          "settle_currency": string | null;
          "settle_status": string | null;
          "times_seen": number;
        };
        ComputedFields: never;
        Insert: {
          "detail"?: string | null;
          "first_seen"?: string | null;
          "gateway"?: string | null;
          "gateway_amount"?: number | null;
          "gateway_currency"?: string | null;
          "gateway_object_id"?: string | null;
          "gateway_payment_id"?: string | null;
          "gateway_refund_id"?: string | null;
          "gateway_status"?: string | null;
          "id"?: number | null;
          "kind"?: string | null;
          "last_seen"?: string | null;
          "order_id"?: string | null;
          "payout_id"?: string | null;
          "refund_id"?: string | null;
          "reopened_count"?: number | null;
          "settle_amount"?: number | null;
          "settle_currency"?: string | null;
          "settle_status"?: string | null;
          "times_seen"?: number | null;
        };
        Update: {
          "detail"?: string | null;
          "first_seen"?: string | null;
          "gateway"?: string | null;
          "gateway_amount"?: number | null;
          "gateway_currency"?: string | null;
          "gateway_object_id"?: string | null;
          "gateway_payment_id"?: string | null;
          "gateway_refund_id"?: string | null;
          "gateway_status"?: string | null;
          "id"?: number | null;
          "kind"?: string | null;
          "last_seen"?: string | null;
          "order_id"?: string | null;
          "payout_id"?: string | null;
          "refund_id"?: string | null;
          "reopened_count"?: number | null;
          "settle_amount"?: number | null;
          "settle_currency"?: string | null;
          "settle_status"?: string | null;
          "times_seen"?: number | null;
        };
        Relationships: [
          {
            foreignKeyName: "gateway_discrepancies_order_id_fkey";
            columns: ["order_id"];
            isOneToOne: false;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "gateway_discrepancies_payout_id_fkey";
            columns: ["payout_id"];
            isOneToOne: false;
            referencedRelation: "payouts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "gateway_discrepancies_refund_id_fkey";
            columns: ["refund_id"];
            isOneToOne: false;
            referencedRelation: "refunds";
            referencedColumns: ["id"];
          },
        ];
      };
      "open_disputes": {
        Row: {
          "account_id": string;
          "amount": number;
          "amount_held": number | null;
          "amount_withdrawn": number;
          "created_at": string;
          "currency": string;
          "evidence_due_by": string | null;
          "fee": number;
          "fee_currency": string | null;
          "gateway": string;
          "gateway_dispute_id": string;
          "gateway_payment_id": string;
          "gateway_status": string;
          "id": string;
          "order_id": string;
          "phase": string;
          "purpose": string;
          "reason": string | null;
          "shortfall_owed": number | null;
          "status": string;
        };
        ComputedFields: never;
        Relationships: [
          {
            foreignKeyName: "disputes_account_id_fkey";
            columns: ["account_id"];
            isOneToOne: false;
            referencedRelation: "accounts";
            referencedColumns: ["id"];
          },
          {
            foreignKeyName: "disputes_currency_fkey";
            columns: ["currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "disputes_fee_currency_fkey";
            columns: ["fee_currency"];
            isOneToOne: false;
            referencedRelation: "currencies";
            referencedColumns: ["code"];
          },
          {
            foreignKeyName: "disputes_order_id_fkey";
            columns: ["order_id"];
            isOneToOne: false;
            referencedRelation: "orders";
            referencedColumns: ["id"];
          },
        ];
      };
      "payment_stats": {
        Row: {
          "average_paid_amount": number | null;
          "currency": string | null;
          "day": string | null;
          "gateway": string | null;
          "gross": number | null;
          "net": number | null;
          "orders_created": number | null;
          "orders_expired": number | null;
          "orders_failed": number | null;
          "orders_paid": number | null;
          "refunded": number | null;
          "success_rate": number | null;
        };
        ComputedFields: never;
        Relationships: [];
      };
      "payout_stats": {
        Row: {
          "currency": string;
          "day": string | null;
          "fees": number | null;
          "gateway": string;
          "in_flight": number | null;
          "payouts_failed": number | null;
          "payouts_in_flight": number | null;
          "payouts_requested": number | null;
          "payouts_reversed": number | null;
          "payouts_sent": number | null;
          "requested": number | null;
          "returned": number | null;
          "sent": number | null;
        };
        ComputedFields: never;
        Relationships: [];
      };
      "refund_exceptions": {
        Row: {
          "account_id": string | null;
          "amount": number | null;
          "created_at": string | null;
          "currency": string | null;
          "detail": string | null;
          "gateway": string | null;
          "gateway_refund_id": string | null;
          "kind": string | null;
          "order_id": string | null;
          "status": string | null;
        };
        ComputedFields: never;
        Relationships: [];
      };
      "wallet_spending_stats": {
        Row: {
          "captured": number | null;
          "charges": number | null;
          "currency": string;
          "day": string | null;
          "held": number | null;
          "holds": number | null;
          "holds_captured": number | null;
          "holds_expired": number | null;
          "holds_voided": number | null;
          "net": number | null;
          "refunded": number | null;
        };
        ComputedFields: never;
        Relationships: [];
      };
    };
    Functions: {
      [_ in never]: never;
    };
    Enums: {
      [_ in never]: never;
    };
    CompositeTypes: {
      [_ in never]: never;
    };
  };
};

type DatabaseWithoutInternals = Omit<Database, "__InternalSupabase">;

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">];

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof (
      & DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
      & DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"]
    )
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals } ? (
    & DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    & DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"]
  )[TableName] extends {
    Row: infer R;
  } ? R
  : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    ? (DefaultSchema["Tables"] & DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
      Row: infer R;
    } ? R
    : never
  : never;

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends
    {
      Insert: infer I;
    } ? I
  : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Insert: infer I;
    } ? I
    : never
  : never;

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends
    {
      Update: infer U;
    } ? U
  : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Update: infer U;
    } ? U
    : never
  : never;

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never = never,
> = DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
    ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
  : never;

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never = never,
> = PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][
    CompositeTypeName
  ]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
    ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
  : never;

export const Constants = {
  "public": {
    Enums: {},
  },
} as const;
