// A throwaway S3 server (OpenStack Swift + s3api, scripts/swift-s3.sh) with the bench's
// objects the S3 scenarios need uploaded (--s3).
import { execFileSync } from "node:child_process";
import { createReadStream, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { atExit, run } from "./proc.mjs";

const BUCKET = "zipgate-bench";
const PREFIX = "data/";

/**
 * Starts a throwaway Swift s3api with its state in `state` (stopped at exit, also on a crash or
 * a signal) and creates `bucket`: the start script's output (endpoint, region, admin
 * credentials), an admin client and stop().
 */
export async function startSwift({ repo, state, bucket, say }) {
  const script = join(repo, "scripts/swift-s3.sh");
  say("starting Swift s3api on loopback (scripts/swift-s3.sh; it installs the Debian swift packages when missing)");
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      execFileSync("bash", [script, "stop", state], { stdio: "ignore" });
    } catch {}
  };
  atExit(stop);
  const info = JSON.parse((await run("bash", [script, "start", state], { timeoutMs: 900_000 })).trim().split("\n").pop());
  const client = new S3Client({
    endpoint: info.endpoint,
    region: info.region,
    credentials: info.admin,
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return { info, client, stop };
}

/** `upload`: the names of the sets to put in the bucket (small, few, one). */
export async function startS3({ repo, work, sets, root, say, upload }) {
  const state = join(work, "swift");
  const { info, client, stop } = await startSwift({ repo, state, bucket: BUCKET, say });
  const s3 = { endpoint: info.endpoint, region: info.region, credentials: info.admin, bucket: BUCKET, prefix: PREFIX };
  // [key in the bucket, file it is read from]
  const objects = upload.flatMap((set) => sets[set].keys.map((key, i) => [key, sets[set].sources?.[i] ?? key]));
  const t0 = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < objects.length) {
      const [key, source] = objects[next++];
      if (next % 2500 === 0) say(`  uploaded ${next} of ${objects.length}`);
      const file = join(root, source);
      const Body = statSync(file).size > 64 * 1024 * 1024 ? createReadStream(file) : readFileSync(file);
      if (Body instanceof Readable)
        await new Upload({ client, params: { Bucket: BUCKET, Key: PREFIX + key, Body }, partSize: 64 * 1024 * 1024, queueSize: 2 }).done();
      else await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: PREFIX + key, Body }));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  say(`uploaded ${objects.length} objects to s3://${BUCKET}/${PREFIX} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  client.destroy();
  return { client: s3, stop, state };
}

export async function stopS3(s3, say) {
  say("stopping Swift");
  s3.stop();
}
