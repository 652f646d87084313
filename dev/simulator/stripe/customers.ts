// Customers: /v1/customers and the customer's payment methods.
import { invalid, noSuch } from "./errors.ts";
import { emit, emitUpdated } from "./events.ts";
import { list, retrieve } from "./lists.ts";
import {
  addressParam,
  ALLOWED,
  applyMetadata,
  emailParam,
  hash,
  nullableStr,
  rejectUnknown,
  str,
  strArray,
} from "./params.ts";
import { attachTo, pmsOf, resolvePm } from "./payment_methods.ts";
import { type ApiCall, ok, type Res, type StripeState } from "./state.ts";
import { clone, randomAlnum, randomId } from "./util.ts";
import type { Customer } from "./wire.ts";

export function listCustomers(s: StripeState, { params: p, path: url }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.customerList);
  const email = str(p, "email");
  const all = [...s.customers.values()].filter((c) => email === undefined || c.email === email);
  return ok(list(all, p, url));
}

export function createCustomer(s: StripeState, { params: p, ctx }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.customerCreate);
  const email = emailParam(p) ?? null;
  const metadata = applyMetadata(p.metadata, {});
  const settings = hash(p, "invoice_settings");
  if (settings) rejectUnknown(settings, ALLOWED.invoiceSettings, "invoice_settings");
  const pmId = str(p, "payment_method");
  const pmRec = pmId === undefined ? undefined : resolvePm(s, pmId, "payment_method");
  if (pmRec && pmRec.pm.customer !== null) {
    throw invalid(
      "The payment method you provided has already been attached to a customer.",
      "payment_method",
      "payment_method_unexpected_state",
    );
  }
  const defaultPm = settings
    ? nullableStr(settings, "default_payment_method", "invoice_settings")
    : undefined;
  if (defaultPm && defaultPm !== pmRec?.pm.id) {
    throw invalid(
      `The customer does not have a payment method with the ID ${defaultPm}. The payment method ` +
        "must be attached to the customer.",
      "invoice_settings[default_payment_method]",
      "resource_missing",
    );
  }
  const c: Customer = {
    id: randomId("cus_"),
    object: "customer",
    address: addressParam(p.address, "address") ?? null,
    balance: 0,
    created: s.unix(),
    currency: null,
    default_source: null,
    delinquent: false,
    description: nullableStr(p, "description") ?? null,
    discount: null,
    email,
    invoice_prefix: randomAlnum(8).toUpperCase(),
    invoice_settings: {
      custom_fields: null,
      default_payment_method: defaultPm ?? null,
      footer: settings ? nullableStr(settings, "footer", "invoice_settings") ?? null : null,
      rendering_options: null,
    },
    livemode: false,
    metadata,
    name: nullableStr(p, "name") ?? null,
    next_invoice_sequence: 1,
    phone: nullableStr(p, "phone") ?? null,
    preferred_locales: strArray(p, "preferred_locales") ?? [],
    shipping: null,
    tax_exempt: "none",
    test_clock: null,
  };
  s.customers.set(c.id, c);
  emit(s, ctx, "customer.created", c);
  if (pmRec) attachTo(s, ctx, pmRec, c);
  return ok(c);
}

export function updateCustomer(s: StripeState, { ids: { id }, params: p, ctx }: ApiCall): Res {
  const c = s.customer(id);
  rejectUnknown(p, ALLOWED.customerUpdate);
  const before = clone(c);
  const email = emailParam(p);
  const metadata = applyMetadata(p.metadata, c.metadata);
  const settings = hash(p, "invoice_settings");
  let defaultPm: string | null | undefined;
  let footer: string | null | undefined;
  if (settings) {
    rejectUnknown(settings, ALLOWED.invoiceSettings, "invoice_settings");
    defaultPm = nullableStr(settings, "default_payment_method", "invoice_settings");
    footer = nullableStr(settings, "footer", "invoice_settings");
    if (defaultPm) {
      const rec = s.pms.get(defaultPm);
      if (!rec) {
        throw noSuch("PaymentMethod", defaultPm, "invoice_settings[default_payment_method]");
      }
      if (rec.pm.customer !== c.id) {
        throw invalid(
          `The customer does not have a payment method with the ID ${defaultPm}. The payment ` +
            "method must be attached to the customer.",
          "invoice_settings[default_payment_method]",
          "resource_missing",
        );
      }
    }
  }
  const address = addressParam(p.address, "address");
  // Validation is complete: apply.
  if (email !== undefined) c.email = email;
  c.metadata = metadata;
  if (defaultPm !== undefined) c.invoice_settings.default_payment_method = defaultPm;
  if (footer !== undefined) c.invoice_settings.footer = footer;
  if (address !== undefined) c.address = address;
  const name = nullableStr(p, "name");
  if (name !== undefined) c.name = name;
  const phone = nullableStr(p, "phone");
  if (phone !== undefined) c.phone = phone;
  const description = nullableStr(p, "description");
  if (description !== undefined) c.description = description;
  const locales = strArray(p, "preferred_locales");
  if (locales !== undefined) c.preferred_locales = locales;
  emitUpdated(s, ctx, "customer.updated", before, c);
  return ok(c);
}

export function retrieveCustomer(s: StripeState, { ids, params: p }: ApiCall): Res {
  return ok(retrieve(p, s.customer(ids.id)));
}

export function listCustomerPaymentMethods(s: StripeState, { ids, params: p, path }: ApiCall): Res {
  const c = s.customer(ids.id);
  rejectUnknown(p, ALLOWED.customerPms);
  const type = str(p, "type");
  return ok(list(pmsOf(s, c.id, type), p, path));
}

export function retrieveCustomerPaymentMethod(s: StripeState, { ids, params: p }: ApiCall): Res {
  const c = s.customer(ids.id);
  const rec = s.pms.get(ids.pm);
  if (!rec || rec.pm.customer !== c.id) throw noSuch("payment_method", ids.pm, "id", 404);
  return ok(retrieve(p, rec.pm));
}
