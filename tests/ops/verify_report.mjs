// A contentmatch report verifier written from services/report/README.md alone (Node.js 20, no
// dependencies): Ed25519 over the RFC 8785 canonical JSON of the report without "signature",
// with the public key named by signature.key_id in GET /v1/reports/public-keys.
//
//   node verify_report.mjs REPORT.json KEYS     KEYS: that listing, saved to a file or as a URL
//
// Exit 0: authentic; 1: not authentic (the reason on stderr); 2: a file or the keys unreadable.
import { createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

// RFC 8785: ECMAScript's own number and string spelling, names sorted by UTF-16 code units
// (what Array.prototype.sort does with strings), no whitespace.
export function canonicalize(value) {
  if (typeof value === "number" && !Number.isFinite(value)) throw new Error("NaN/Infinity");
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(",")}]`;
  const names = Object.keys(value).sort();
  return `{${names.map((n) => `${JSON.stringify(n)}:${canonicalize(value[n])}`).join(",")}}`;
}

// JSON.parse keeps the last of two members with one name; a signed report has each name once.
export function refuseDuplicateNames(text) {
  let i = 0;
  const space = () => { while (/[ \t\n\r]/.test(text[i] ?? "")) i++; };
  const string = () => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    return JSON.parse(text.slice(start, ++i));
  };
  const value = () => {
    space();
    const open = text[i];
    if (open === '"') return void string();
    if (open !== "{" && open !== "[") { while (/[^,\]} \t\n\r]/.test(text[i] ?? ",")) i++; return; }
    const seen = new Set();
    i++;
    space();
    if (text[i] === (open === "{" ? "}" : "]")) return void i++;
    for (;;) {
      if (open === "{") {
        space();
        const name = string();
        if (seen.has(name)) throw new Error(`duplicate member name ${JSON.stringify(name)}`);
        seen.add(name);
        space();
        i++; // the colon
      }
      value();
      space();
      if (text[i++] !== ",") return;
    }
  };
  value();
}

async function main([reportPath, keysSource]) {
  let text, report, listing;
  try {
    text = readFileSync(reportPath, "utf8");
    report = JSON.parse(text); // syntax first: the duplicate scan below reads valid JSON only
    listing = /^https?:/.test(keysSource)
      ? await (await fetch(keysSource)).json()
      : JSON.parse(readFileSync(keysSource, "utf8"));
  } catch (err) {
    console.error(`not verified: ${err.message}`);
    return 2;
  }
  const sig = report.signature ?? {};
  try {
    refuseDuplicateNames(text);
    if (sig.algorithm !== "Ed25519") throw new Error(`unsupported algorithm ${sig.algorithm}`);
    if (sig.canonicalization !== "RFC8785")
      throw new Error(`unsupported canonicalization ${sig.canonicalization}`);
    const entry = listing.keys.find((k) => k.key_id === sig.key_id);
    if (!entry) throw new Error(`signed with key ${sig.key_id}, which is not listed`);
    // The raw 32-byte key in an SPKI wrapper (the listing's public_key_pem is the same key).
    const spki = Buffer.concat([
      Buffer.from("302a300506032b6570032100", "hex"),
      Buffer.from(entry.public_key, "base64"),
    ]);
    const key = createPublicKey({ key: spki, format: "der", type: "spki" });
    const { signature, ...body } = report;
    const signed = Buffer.from(canonicalize(body), "utf8");
    if (!verify(null, signed, key, Buffer.from(sig.value, "base64")))
      throw new Error("signature does not match the content: the report was altered");
  } catch (err) {
    console.error(`NOT AUTHENTIC: ${err.message}`);
    return 1;
  }
  console.log(`authentic: report ${report.report_id} signed by key ${sig.key_id}`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
