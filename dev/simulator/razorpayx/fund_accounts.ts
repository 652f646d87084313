// Fund accounts: POST /v1/fund_accounts (bank account or VPA of a contact; the same details
// return the existing one) and GET by id.
import { invalid, jsonResponse, notFoundId } from "./errors.ts";
import { randomId, readBody } from "./params.ts";
import type { Call, RazorpayXState } from "./state.ts";
import type { FundAccount, Json } from "./wire.ts";

const IFSC = /^[A-Z]{4}0[A-Z0-9]{6}$/;
const VPA = /^[A-Za-z0-9.\-_]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$/;
const BANKS: Record<string, string> = { HDFC: "HDFC Bank", ICIC: "ICICI Bank", SBIN: "SBI" };

export async function createFundAccount(s: RazorpayXState, { req }: Call): Promise<Response> {
  const fa = newFundAccount(await readBody(req), s.unix());
  if (fa instanceof Response) return fa;
  if (!s.contacts.has(fa.contact_id)) return invalid("The id provided does not exist");
  const existing = [...s.fundAccounts.values()].find((x) => sameFundAccount(x, fa));
  if (existing) return jsonResponse(200, existing);
  s.fundAccounts.set(fa.id, fa);
  return jsonResponse(201, fa);
}

export function getFundAccount(s: RazorpayXState, { ids }: Call): Response {
  const fa = s.fundAccounts.get(ids.id);
  return fa ? jsonResponse(200, fa) : notFoundId();
}

function newFundAccount(body: Json, now: number): FundAccount | Response {
  if (typeof body.contact_id !== "string") {
    return invalid("The contact id field is required.", "contact_id");
  }
  const base = {
    id: randomId("fa_"),
    entity: "fund_account" as const,
    contact_id: body.contact_id,
    batch_id: null,
    active: true,
    created_at: now,
  };
  if (body.account_type === "bank_account") {
    const b = (body.bank_account ?? {}) as Json;
    if (typeof b.name !== "string" || b.name.length < 3 || b.name.length > 120) {
      return invalid("The name must be between 3 and 120 characters.", "name");
    }
    if (typeof b.ifsc !== "string" || !IFSC.test(b.ifsc)) {
      return invalid("The ifsc must be 11 characters, a valid IFSC.", "ifsc");
    }
    if (typeof b.account_number !== "string" || !/^[0-9]{5,35}$/.test(b.account_number)) {
      return invalid("The account number must be 5 to 35 digits.", "account_number");
    }
    return {
      ...base,
      account_type: "bank_account",
      bank_account: {
        ifsc: b.ifsc,
        bank_name: BANKS[b.ifsc.slice(0, 4)] ?? `${b.ifsc.slice(0, 4)} Bank`,
        name: b.name,
        account_number: b.account_number,
        notes: [],
      },
    };
  }
  if (body.account_type === "vpa") {
    const address = ((body.vpa ?? {}) as Json).address;
    if (typeof address !== "string" || !VPA.test(address)) {
      return invalid("Invalid VPA. Please enter a valid Virtual Payment Address", "address");
    }
    const [username, handle] = address.split("@");
    return { ...base, account_type: "vpa", vpa: { address, username, handle } };
  }
  return invalid("The account type must be bank_account, vpa or card.", "account_type");
}

function sameFundAccount(a: FundAccount, b: FundAccount): boolean {
  return a.contact_id === b.contact_id && a.account_type === b.account_type &&
    JSON.stringify(a.bank_account ?? a.vpa) === JSON.stringify(b.bank_account ?? b.vpa);
}
