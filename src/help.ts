import { VERSION } from "./version.js";

/** `zipgate --help`: every setting, one line each; the README has the details. */
export function helpText(): string {
  return `zipgate ${VERSION}: a streaming zip download gateway for object storage

Usage: zipgate [--help | --version]
       node dist/main.js            (configured by environment variables)

Server
  PORT                          port to listen on (default 8080; digits only)
  HOST                          address to bind (default 127.0.0.1; 0.0.0.0 in the image)
  ZIPGATE_PUBLIC_URL            base of the URLs handed out (default http://HOST:PORT);
                                set it behind a proxy or in a container
  ZIPGATE_DOMAINS               extra domains listed in urls.domains (comma-separated)
  ZIPGATE_TRUST_PROXY           true, false or the number of proxies in front: which
                                X-Forwarded-For address is logged as the client (default false)
  ZIPGATE_CORS_ORIGINS          origins browser apps may call from (comma-separated, or *)
  ZIPGATE_KEEPALIVE_TIMEOUT     idle keep-alive connections kept this long (default 65s,
                                above load balancers' 60 s idle timeouts)
  LOG_LEVEL                     fatal, error, warn, info (default), debug (adds error stacks), trace, silent

Store
  ZIPGATE_STORAGE               a folder (default ./data), file:///path or s3://bucket/prefix
  ZIPGATE_S3_FORCE_PATH_STYLE   path-style S3 URLs (MinIO, Swift…)
  ZIPGATE_S3_READ               lean (default: a GET path of its own) or sdk (GetObject)
  ZIPGATE_S3_PART_SIZE (8 MiB), ZIPGATE_S3_PARTS (8), ZIPGATE_S3_PART_MEMORY (256 MiB)
                                large objects as ranged parts in flight, and their memory
  AWS_REGION, AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the S3 client's
  ZIPGATE_STORE_CONNECT_TIMEOUT (default 5s)   ZIPGATE_STORE_TIMEOUT (default 20s)
  ZIPGATE_NODE_FLAGS            Node flags bin/zipgate starts the process with (default: on s3://
                                stores a small young generation, see the README; none otherwise)

Keys and secrets (each also as NAME_FILE=/run/secrets/…, read from that file)
  ZIPGATE_API_KEYS              key1,key2=/scope/|/other/ (default: one generated, kept in the store)
  ZIPGATE_SIGNING_SECRET        manifest signing secret, >= 32 bytes (default: generated, kept)
  ZIPGATE_WEBHOOK_SECRET        HMAC key of webhook signatures
  ZIPGATE_DESTINATIONS          JSON array of buckets jobs may write into
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   (the *_FILE forms only)

Archives
  ZIPGATE_MAX_FILES (10000)  ZIPGATE_MAX_BYTES (25 GiB)  ZIPGATE_TTL (24h)
  ZIPGATE_READ_AHEAD (8)  ZIPGATE_CACHE_MB (128)  ZIPGATE_CACHE_TTL (60s)
  ZIPGATE_URL_ALLOW (hosts and CIDRs URL objects may reach)

State
  ZIPGATE_SWEEP_INTERVAL (1h; 0 never)  ZIPGATE_SWEEP_RATE (100 requests/s)  ZIPGATE_JOB_RETENTION (30d; 0 keeps)

Limits and shutdown
  ZIPGATE_MAX_DOWNLOADS (512)  ZIPGATE_MAX_CONNECTIONS (4096)  ZIPGATE_SEND_TIMEOUT (120s)
  ZIPGATE_REQUEST_TIMEOUT (60s)  ZIPGATE_DRAIN_TIMEOUT (25s)  ZIPGATE_SHUTDOWN_DELAY (0)

Box flavour
  ZIPGATE_BOX_TTL (15m)  ZIPGATE_BOX_MAX_DOWNLOADS (5)  ZIPGATE_BOX_LEASE (60s)  ZIPGATE_BOX_ALLOW_RESUME (false)

Jobs
  ZIPGATE_JOB_CONCURRENCY (2)  ZIPGATE_JOB_LEASE (30s)
  ZIPGATE_WEBHOOK_URL  ZIPGATE_WEBHOOK_ATTEMPTS (5)  ZIPGATE_WEBHOOK_BACKOFF_MS (1000)

Endpoints for operators: /livez, /readyz, /metrics (Prometheus), /openapi.json.
A ZIPGATE_* variable zipgate does not read is an error, as is any bad value: all are
reported at once and the process exits with status 2.
`;
}
