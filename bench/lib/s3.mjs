// A throwaway S3 server (OpenStack Swift + s3api, scripts/swift-s3.sh) with the bench's
// small files uploaded, for the S3 scenarios (--s3).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { atExit, run } from "./proc.mjs";

const BUCKET = "zipgate-bench";
const PREFIX = "data/";

export async function startS3({ repo, work, sets, root, say }) {
  const script = join(repo, "scripts/swift-s3.sh");
  const state = join(work, "swift");
  say("starting Swift s3api on loopback (scripts/swift-s3.sh; it installs the Debian swift packages when missing)");
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      execFileSync("bash", [script, "stop", state], { stdio: "ignore" });
    } catch {}
  };
  atExit(stop); // also on a crash or a signal
  const info = JSON.parse((await run("bash", [script, "start", state], { timeoutMs: 900_000 })).trim().split("\n").pop());
  const s3 = { endpoint: info.endpoint, region: info.region, credentials: info.admin, bucket: BUCKET, prefix: PREFIX };
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: s3.credentials,
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const keys = sets.small.keys;
  const t0 = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++];
      if (next % 2500 === 0) say(`  uploaded ${next} of ${keys.length}`);
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: PREFIX + key, Body: readFileSync(join(root, key)) }));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  say(`uploaded ${keys.length} objects to s3://${BUCKET}/${PREFIX} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  client.destroy();
  return { client: s3, stop, state };
}

export async function stopS3(s3, say) {
  say("stopping Swift");
  s3.stop();
}
