import { randomUUID } from "node:crypto";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { inject } from "vitest";
import { createS3Storage, type S3StorageOptions } from "../../src/storage/s3.js";
import type { Storage } from "../../src/storage/types.js";

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface S3ServerInfo {
  endpoint: string;
  region: string;
  bucket: string;
  /** Full access to the test bucket. */
  admin: S3Credentials;
  /** A user of the same account without access: AccessDenied. */
  limited: S3Credentials;
}

declare module "vitest" {
  export interface ProvidedContext {
    s3: S3ServerInfo;
  }
}

export function s3Server(): S3ServerInfo {
  return inject("s3");
}

/** A fresh prefix in the test bucket, so suites never see each other's objects. */
export function freshPrefix(label: string): string {
  return `${label}-${randomUUID().slice(0, 8)}/`;
}

/** A client as a user of the store would have (admin credentials). */
export function adminClient(): S3Client {
  const s3 = s3Server();
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: s3.admin,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

export function s3Storage(prefix: string, credentials?: S3Credentials, options: Partial<S3StorageOptions> = {}): Storage {
  const s3 = s3Server();
  return createS3Storage({
    bucket: s3.bucket,
    prefix,
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: credentials ?? s3.admin,
    ...options,
  });
}

/** Environment for a gateway on the S3 store (as main.ts would read it). */
export function s3Env(prefix: string, credentials?: S3Credentials): Record<string, string> {
  const s3 = s3Server();
  const c = credentials ?? s3.admin;
  return {
    ZIPGATE_STORAGE: `s3://${s3.bucket}/${prefix}`,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_REGION: s3.region,
    ZIPGATE_S3_FORCE_PATH_STYLE: "true",
    AWS_ACCESS_KEY_ID: c.accessKeyId,
    AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
  };
}

export async function putObjects(client: S3Client, prefix: string, objects: Record<string, string | Buffer>, concurrency = 16): Promise<void> {
  const entries = Object.entries(objects);
  const s3 = s3Server();
  for (let i = 0; i < entries.length; i += concurrency) {
    await Promise.all(
      entries
        .slice(i, i + concurrency)
        .map(([key, body]) =>
          client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: prefix + key, Body: typeof body === "string" ? Buffer.from(body) : body })),
        ),
    );
  }
}
