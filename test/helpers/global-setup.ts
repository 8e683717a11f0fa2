import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import type { TestProject } from "vitest/node";
import type { S3ServerInfo } from "./s3.js";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../scripts/swift-s3.sh", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const TEST_BUCKET = "zipgate-test";

/**
 * Starts one real S3 server (OpenStack Swift with s3api) for the whole run.
 * If it cannot start, the run fails and says why: S3 suites never skip.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Tests that run the gateway as its own process start dist/main.js: build it from the
  // sources under test, alongside the S3 server's start.
  const build = run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json")], { cwd: ROOT }).catch(
    (err: { stdout?: string; message: string }) => {
      throw new Error(`building dist/ for the process tests failed: ${err.message}\n${err.stdout ?? ""}`);
    },
  );
  build.catch(() => {});
  const state = await mkdtemp(join(tmpdir(), "zipgate-swift-"));
  let info: Omit<S3ServerInfo, "bucket">;
  try {
    const { stdout } = await run(SCRIPT, ["start", state], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
    info = JSON.parse(stdout.trim().split("\n").pop() as string);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    await run(SCRIPT, ["stop", state]).catch(() => {});
    throw new Error(`the S3 test server (Swift s3api) did not start: ${e.message}\n${e.stderr ?? ""}`);
  }
  const client = new S3Client({ endpoint: info.endpoint, region: info.region, forcePathStyle: true, credentials: info.admin });
  await client.send(new CreateBucketCommand({ Bucket: TEST_BUCKET })).catch((err: { name?: string }) => {
    if (err.name !== "BucketAlreadyOwnedByYou") throw err;
  });
  client.destroy();
  project.provide("s3", { ...info, bucket: TEST_BUCKET });
  await build;
  return async () => {
    await run(SCRIPT, ["stop", state]).catch(() => {});
    await rm(state, { recursive: true, force: true });
  };
}
