// Contacts: POST /v1/contacts (the same details return the existing contact) and GET by id.
import { invalid, jsonResponse, notFoundId } from "./errors.ts";
import { randomId, readBody, strings } from "./params.ts";
import type { Call, RazorpayXState } from "./state.ts";
import type { Contact, Json } from "./wire.ts";

export async function createContact(s: RazorpayXState, { req }: Call): Promise<Response> {
  const c = newContact(await readBody(req), s.unix());
  if (c instanceof Response) return c;
  const existing = [...s.contacts.values()].find((x) => sameContact(x, c));
  if (existing) return jsonResponse(200, existing);
  s.contacts.set(c.id, c);
  return jsonResponse(201, c);
}

export function getContact(s: RazorpayXState, { ids }: Call): Response {
  const c = s.contacts.get(ids.id);
  return c ? jsonResponse(200, c) : notFoundId();
}

function newContact(body: Json, now: number): Contact | Response {
  const name = body.name;
  if (typeof name !== "string" || name.length < 3 || name.length > 50) {
    return invalid("The name must be between 3 and 50 characters.", "name");
  }
  const ref = body.reference_id ?? null;
  if (ref !== null && (typeof ref !== "string" || ref.length > 40)) {
    return invalid("The reference id may not be greater than 40 characters.", "reference_id");
  }
  const notes = strings(body.notes);
  if (notes instanceof Response) return notes;
  const opt = (k: string) => typeof body[k] === "string" ? body[k] as string : null;
  return {
    id: randomId("cont_"),
    entity: "contact",
    name,
    contact: opt("contact"),
    email: opt("email"),
    type: opt("type"),
    reference_id: ref as string | null,
    batch_id: null,
    active: true,
    notes,
    created_at: now,
  };
}

/** Contacts with all the same details are returned, not created again. */
function sameContact(a: Contact, b: Contact): boolean {
  return a.name === b.name && a.email === b.email && a.contact === b.contact &&
    a.type === b.type && a.reference_id === b.reference_id;
}
