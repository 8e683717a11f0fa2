/** A ZipKit-style job: fetch URLs (or stored objects), zip, write into a bucket. */
export interface JobRecord {
  uuid: string;
  status: "none" | "processing" | "succeeded" | "failed";
  created_at: string;
  started_at?: string | undefined;
  completed_at?: string | undefined;
  /** How many times processing started (a job cut off by a restart runs again). */
  attempts: number;
  request: {
    urls: Array<{ url: string; filename?: string | undefined }>;
    objects?: Array<{ path: string; filename?: string | undefined }> | undefined;
    bucket_name: string;
    key: string;
    service: "s3" | "r2";
    metadata?: Record<string, string> | undefined;
  };
  /** Key id of the API key that made it. */
  owner: string;
  result?: { size: number; etag: string; bucket_name: string; key: string; entry_forms?: Record<string, unknown> } | undefined;
  error?: { type: string; code: string; message: string; url?: string | undefined; status?: number | undefined } | undefined;
  webhook?:
    | {
        /** The delivery id every attempt carried (X-Zipgate-Delivery). */
        id?: string | undefined;
        state: "pending" | "delivered" | "failed";
        attempts: number;
        last_status?: number | undefined;
        last_error?: string | undefined;
        delivered_at?: string | undefined;
      }
    | undefined;
}
