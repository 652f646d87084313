// Stripe's currencies: the supported codes, their exponents, minimum and maximum charge amounts.

// From Stripe's "Invalid currency" error message (the list it prints of supported codes).
export const SUPPORTED_CURRENCIES = new Set(
  ("usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp " +
    "byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip " +
    "gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt " +
    "lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr " +
    "nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd " +
    "std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw")
    .split(" "),
);
// GATEWAY_FACTS B8.
export const ZERO_DECIMAL = new Set(
  "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split(" "),
);
export const THREE_DECIMAL = new Set("bhd jod kwd omr tnd".split(" "));
// Minimum charge in minor units (GATEWAY_FACTS B8; USD official, the rest third-party). Assumed for
// unlisted currencies: 50, or 100 for three-decimal ones.
export const MINIMUM_AMOUNT = new Map<string, number>([
  ["usd", 50],
  ["aed", 200],
  ["aud", 50],
  ["bgn", 100],
  ["brl", 50],
  ["cad", 50],
  ["chf", 50],
  ["czk", 1500],
  ["dkk", 250],
  ["eur", 50],
  ["gbp", 30],
  ["hkd", 400],
  ["huf", 17500],
  ["inr", 50],
  ["jpy", 50],
  ["mxn", 1000],
  ["myr", 200],
  ["nok", 300],
  ["nzd", 50],
  ["pln", 200],
  ["ron", 200],
  ["sek", 300],
  ["sgd", 50],
  ["thb", 1000],
]);
export const MAX_AMOUNT = 99_999_999; // eight digits (GATEWAY_FACTS B3)

export function exponentOf(currency: string): number {
  return ZERO_DECIMAL.has(currency) ? 0 : THREE_DECIMAL.has(currency) ? 3 : 2;
}

export function minimumOf(currency: string): number {
  return MINIMUM_AMOUNT.get(currency) ?? (THREE_DECIMAL.has(currency) ? 100 : 50);
}

export function formatMajor(amount: number, currency: string): string {
  const exp = exponentOf(currency);
  if (exp === 0) return String(amount);
  const s = String(amount).padStart(exp + 1, "0");
  return `${s.slice(0, -exp)}.${s.slice(-exp)}`;
}
