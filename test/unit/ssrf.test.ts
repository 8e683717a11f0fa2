import { describe, expect, it } from "vitest";
import { isPublicAddress, safeUrl, UrlFetcher } from "../../src/sources/url.js";

/** One address from every special-purpose range (IANA's IPv4 and IPv6 registries), and the forms that hide them. */
const NOT_PUBLIC = [
  // IPv4
  "0.0.0.0",
  "0.1.2.3",
  "10.1.2.3",
  "100.64.0.1",
  "127.0.0.1",
  "127.255.255.254",
  "169.254.169.254",
  "172.16.0.1",
  "172.31.255.255",
  "192.0.0.8",
  "192.0.2.1",
  "192.31.196.1",
  "192.52.193.1",
  "192.88.99.1",
  "192.168.1.1",
  "192.175.48.1",
  "198.18.0.1",
  "198.51.100.2",
  "203.0.113.9",
  "224.0.0.1",
  "239.255.255.250",
  "240.0.0.1",
  "255.255.255.255",
  // IPv6
  "::",
  "::1",
  "::7f00:1",
  "::a9fe:a9fe",
  "::ffff:127.0.0.1",
  "::ffff:169.254.169.254",
  "::ffff:0:7f00:1",
  "64:ff9b::7f00:1",
  "64:ff9b:1::1",
  "100::1",
  "2001::1",
  "2001:2::1",
  "2001:20::1",
  "2001:db8::1",
  "2002:7f00:1::",
  "3fff::1",
  "5f00::1",
  "fc00::1",
  "fd12:3456::1",
  "fe80::1",
  "fec0::1",
  "ff02::1",
  "2620:4f:8000::1",
  // not addresses at all
  "localhost",
  "",
  "::gggg",
];
const PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "::ffff:8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e"];

describe("the SSRF guard is an allowlist of public unicast addresses", () => {
  it.each(NOT_PUBLIC)("refuses %s", (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
    expect(new UrlFetcher().addressAllowed(ip)).toBe(false);
  });

  it.each(PUBLIC)("allows %s", (ip) => {
    expect(isPublicAddress(ip)).toBe(true);
    expect(new UrlFetcher().addressAllowed(ip)).toBe(true);
  });

  it("opens what ZIPGATE_URL_ALLOW names, mapped forms included, and nothing next to it", () => {
    const urls = new UrlFetcher({ allow: ["10.20.0.0/16", "127.0.0.1", "fd00::/8"] });
    expect(urls.addressAllowed("10.20.3.4")).toBe(true);
    expect(urls.addressAllowed("::ffff:10.20.3.4")).toBe(true);
    expect(urls.addressAllowed("10.21.0.1")).toBe(false);
    expect(urls.addressAllowed("127.0.0.1")).toBe(true);
    expect(urls.addressAllowed("127.0.0.2")).toBe(false);
    expect(urls.addressAllowed("fd12::1")).toBe(true);
    expect(urls.addressAllowed("fc00::1")).toBe(false);
  });

  it("shows URLs in messages without query, fragment or their full length", () => {
    expect(safeUrl(new URL("https://bucket.s3.amazonaws.com/a/b.pdf?X-Amz-Signature=abc#frag"))).toBe("https://bucket.s3.amazonaws.com/a/b.pdf");
    expect(safeUrl(new URL(`https://h.example/${"a".repeat(5000)}`)).length).toBe(200);
  });
});
