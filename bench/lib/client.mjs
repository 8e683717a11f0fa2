// The downloading side: curl processes (measure like a user would), and a Node client for
// time to headers / first body byte.
import { request } from "node:http";
import { run } from "./proc.mjs";

const FORMAT = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}\n";

/**
 * One download with curl into /dev/null; `url` may be a list, fetched one after another by the
 * same curl over one connection (its figures summed: bytes, time to the first byte of the
 * first, total time). `range` is a start offset (`Range: bytes=N-`),
 * `rangeTo` an end offset (`Range: bytes=0-N`, inclusive),
 * `maxTime` caps the transfer (seconds; a capped transfer is reported, not thrown).
 */
export async function curl(url, { range, rangeTo, maxTime } = {}) {
  const args = ["-s", "-w", FORMAT];
  if (range !== undefined) args.push("-r", `${range}-`);
  if (rangeTo !== undefined) args.push("-r", `0-${rangeTo}`);
  if (maxTime !== undefined) args.push("--max-time", String(maxTime));
  const urls = Array.isArray(url) ? url : [url];
  for (const u of urls) args.push("-o", "/dev/null", u);
  let out;
  let timedOut = false;
  try {
    out = await run("curl", args);
  } catch (err) {
    // curl exits 28 on --max-time; -w still printed what it got.
    if (maxTime === undefined || err.exitCode !== 28) throw err;
    out = err.stdout ?? "";
    timedOut = true;
  }
  const lines = out
    .trim()
    .split("\n")
    .map((l) => l.trim().split(" ").map(Number));
  const [first] = lines;
  return {
    status: lines.every((l) => l[0] === first[0]) ? first[0] : lines.find((l) => l[0] !== first[0])[0],
    bytes: lines.reduce((a, l) => a + l[1], 0),
    ttfb: first[2],
    seconds: lines.reduce((a, l) => a + l[3], 0),
    timedOut,
  };
}

/**
 * Time to response headers and to the first body byte of a GET, in ms, then the rest of the
 * body read and dropped (the whole download, as a browser would: dropping the connection
 * after the first byte would measure how servers handle aborts instead). A fresh
 * connection each time (no keep-alive), as a first download would have.
 */
export function firstByte(url, { range, headersOnly = false } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
    const req = request(url, { agent: false, headers: range !== undefined ? { Range: `bytes=${range}-` } : {} }, (res) => {
      const headersMs = ms();
      if (headersOnly) {
        res.on("error", () => {});
        req.on("error", () => {});
        req.destroy();
        resolve({ status: res.statusCode, headersMs });
        return;
      }
      let firstByteMs = Number.NaN;
      let bytes = 0;
      res.on("data", (chunk) => {
        if (bytes === 0) firstByteMs = ms();
        bytes += chunk.length;
      });
      res.once("error", reject);
      res.once("end", () => resolve({ status: res.statusCode, headersMs, firstByteMs, totalMs: ms(), bytes }));
    });
    req.once("error", reject);
    req.end();
  });
}
