// Razorpay's currencies and their exponents, minimum amounts, and major-unit formatting.

const EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(" ");
const EXPONENT_3 = "BHD IQD JOD KWD OMR TND".split(" ");
// Exponent-2 currencies from Razorpay's international-payments table; not exhaustive, but every
// currency the project is likely to try is here and unknown codes must fail like Razorpay does.
const EXPONENT_2 = (
  "AED ALL AMD ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BZD CAD CHF CNY COP CRC " +
  "CUP CVE CZK DKK DOP DZD EGP ETB EUR FJD GBP GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR " +
  "JMD KES KGS KHR KYD KZT LAK LKR LRD LSL MAD MDL MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN " +
  "NIO NOK NPR NZD PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SCR SEK SGD SLL SOS SSP SVC SZL THB TTD " +
  "TRY TWD TZS UAH USD UYU UZS XCD YER ZAR ZMW"
).split(" ");
export const CURRENCY_EXPONENT = new Map<string, number>([
  ...EXPONENT_2.map((c) => [c, 2] as [string, number]),
  ...EXPONENT_0.map((c) => [c, 0] as [string, number]),
  ...EXPONENT_3.map((c) => [c, 3] as [string, number]),
]);

export function minimumAmount(exponent: number): number {
  if (exponent === 0) return 1;
  if (exponent === 3) return 1000;
  return 100;
}

export function formatMinor(amount: number, exponent: number): string {
  if (exponent === 0) return String(amount);
  const s = String(amount).padStart(exponent + 1, "0");
  return `${s.slice(0, -exponent)}.${s.slice(-exponent)}`;
}
