import { VERSION } from "./version.js";

/**
 * The OpenAPI 3.1 document of every flavour, served at /openapi.json.
 *
 * Written by hand rather than generated from zod schemas (@hono/zod-openapi): the three
 * flavours validate by hand with error codes and messages each client relies on (Box's
 * codes, BitPaket's `{success:false}`), and moving that to zod would rewrite all three
 * route files that other work is changing too. What keeps this document honest is
 * test/e2e/openapi.test.ts: real responses of every operation are validated against it
 * (ajv, JSON Schema 2020-12, the dialect of OpenAPI 3.1), and every route of the app must
 * appear in it.
 */

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Schema, description: string, headers?: Record<string, Schema>): Schema => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/json": { schema } },
});
const header = (name: string): Schema => ({ $ref: `#/components/headers/${name}` });
const uuid = { type: "string", format: "uuid" };
const dateTime = { type: "string", format: "date-time" };
const objectPath = { type: "string", pattern: "^/", description: "An object path in the store, such as /reports/jan.pdf" };

const ERROR_STATUSES: Record<string, string> = {
  "400": "The request is malformed or names something invalid",
  "401": "No API key, or not a valid one",
  "403": "The key may not read some of the objects, or the store refused access",
  "404": "Unknown, missing or not the caller's",
  "409": "An object changed since the zipball was created",
  "410": "The zipball expired",
  "413": "The request body is larger than 4 MiB",
  "429": "Too many downloads at once for this key (Box)",
  "502": "The object store failed, refused the gateway's credentials or has no such bucket",
  "503": "Busy (download slots full) or shutting down: retry after Retry-After",
  "504": "The object store did not answer in time",
};

/** Error answers of one flavour, for the given statuses. */
function errors(schema: string, statuses: string[]): Record<string, Schema> {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      json(ref(schema), ERROR_STATUSES[s] ?? "An error", {
        "X-Request-Id": header("X-Request-Id"),
        ...(s === "503" || s === "504" ? { "Retry-After": header("Retry-After") } : {}),
        ...(s === "401" ? { "WWW-Authenticate": { schema: { type: "string" }, description: 'Bearer realm="zipgate"' } } : {}),
      }),
    ]),
  );
}

/** The answers of a GET or HEAD of an archive (every flavour streams the same way). */
function archiveResponses(errorSchema: string, extraErrors: string[] = []): Record<string, Schema> {
  const headers = {
    "Content-Disposition": header("Content-Disposition"),
    "Content-Length": header("Content-Length"),
    ETag: header("ETag"),
    "Last-Modified": { schema: { type: "string" }, description: "When the zipball was created" },
    "Accept-Ranges": { schema: { type: "string", enum: ["bytes", "none"] }, description: "`none` for deflate or chunked archives" },
    "Cache-Control": { schema: { type: "string" } },
    "X-Request-Id": header("X-Request-Id"),
  };
  const zip = { "application/zip": { schema: { type: "string", contentMediaType: "application/zip" } } };
  return {
    "200": {
      description:
        "The whole archive. Exact Content-Length for stored archives; chunked (no Content-Length, no ranges) for deflate or when a URL object has no length. A failure after the first byte aborts the connection: never a short zip.",
      headers,
      content: zip,
    },
    "206": {
      description: "One byte range (`Range: bytes=…`); several ranges are answered with the whole archive",
      headers: { ...headers, "Content-Range": header("Content-Range") },
      content: zip,
    },
    "304": { description: "If-None-Match / If-Modified-Since matched", headers: { ETag: header("ETag") } },
    "412": { description: "If-Match / If-Unmodified-Since failed" },
    "416": { description: "The range starts past the end", headers: { "Content-Range": { schema: { type: "string", pattern: "^bytes \\*/\\d+$" } } } },
    ...errors(errorSchema, ["404", ...extraErrors, "502", "503", "504"]),
  };
}

const schemas: Record<string, Schema> = {
  BitpaketObject: {
    type: "object",
    description: 'Exactly one of "path", "id", "folder" or "url"; optionally the entry "name" (may contain "/")',
    properties: {
      path: objectPath,
      id: { type: "string", description: "A registered object id (POST /v2/objects)" },
      folder: { type: "string", pattern: "^/.", description: "A folder; its whole subtree. / is refused" },
      url: { type: "string", format: "uri", description: "An http(s) URL fetched at download time (SSRF-guarded)" },
      name: { type: "string", minLength: 1 },
      crc32: {
        oneOf: [
          { type: "string", pattern: "^[0-9a-fA-F]{8}$" },
          { type: "integer", minimum: 0, maximum: 4294967295 },
        ],
        description:
          "The object's CRC32 (8 hex digits or an integer), not for folders: its entry is sent in the classic form; checked while streaming, a mismatch aborts the download",
      },
    },
    additionalProperties: false,
    oneOf: [{ required: ["path"] }, { required: ["id"] }, { required: ["folder"] }, { required: ["url"] }],
  },
  BitpaketCreateRequest: {
    type: "object",
    required: ["objects"],
    properties: {
      objects: { type: "array", minItems: 1, items: ref("BitpaketObject") },
      name: { type: "string", minLength: 1, maxLength: 255, description: "Download file name; .zip is added. Default: the ball id" },
      expires_in: { type: "integer", minimum: 1, description: "Lifetime in seconds, capped by ZIPGATE_TTL" },
      compression: { type: "string", enum: ["store", "deflate"], default: "store" },
      prepare: {
        type: "boolean",
        description:
          "Unset: objects whose CRC is unknown are read at creation within ZIPGATE_PREPARE_BYTES and ZIPGATE_PREPARE_MS, so their entries are in the classic form (streaming readers open the archive); true: all of them; false: none",
      },
    },
    additionalProperties: false,
  },
  BitpaketCreated: {
    type: "object",
    required: ["success", "data"],
    additionalProperties: false,
    properties: {
      success: { const: true },
      data: {
        type: "object",
        required: ["ball_id", "urls", "expires_at", "exact_length"],
        additionalProperties: false,
        properties: {
          ball_id: uuid,
          urls: {
            type: "object",
            required: ["url", "domains"],
            additionalProperties: false,
            properties: {
              url: { type: "string", format: "uri", description: "GET or HEAD: <public URL>/<ball_id>.zip?zipball" },
              domains: {
                type: "array",
                items: {
                  type: "object",
                  required: ["domain", "url"],
                  additionalProperties: false,
                  properties: { domain: { type: "string" }, url: { type: "string", format: "uri" } },
                },
              },
            },
          },
          expires_at: dateTime,
          exact_length: { type: "boolean", description: "false when a URL object has no length: the archive is sent chunked" },
          notice: { type: "string" },
          entry_forms: ref("EntryForms"),
        },
      },
    },
  },
  BitpaketRevoked: {
    type: "object",
    required: ["success", "data"],
    additionalProperties: false,
    properties: {
      success: { const: true },
      data: { type: "object", required: ["ball_id", "revoked"], additionalProperties: false, properties: { ball_id: uuid, revoked: { const: true } } },
    },
  },
  ObjectIdRequest: { type: "object", required: ["path"], additionalProperties: false, properties: { path: objectPath } },
  ObjectId: {
    type: "object",
    required: ["success", "data"],
    additionalProperties: false,
    properties: {
      success: { const: true },
      data: { type: "object", required: ["id", "path"], additionalProperties: false, properties: { id: uuid, path: objectPath } },
    },
  },
  BitpaketError: {
    type: "object",
    required: ["success", "error"],
    additionalProperties: false,
    properties: {
      success: { const: false },
      error: {
        type: "object",
        required: ["code", "message"],
        description: "Extra fields name what was wrong: missing (paths), missing_ids, denied, field, index, limit, path",
        properties: { code: { type: "string" }, message: { type: "string" } },
      },
    },
  },
  BoxItem: {
    type: "object",
    required: ["type", "id"],
    additionalProperties: false,
    properties: {
      type: { type: "string", enum: ["file", "folder"] },
      id: { type: "string", minLength: 1, description: "A file's path or registered object id, a folder's path; the root (0 or /) is refused" },
    },
  },
  BoxCreateRequest: {
    type: "object",
    required: ["items"],
    additionalProperties: false,
    properties: {
      items: { type: "array", minItems: 1, items: ref("BoxItem") },
      download_file_name: { type: "string", minLength: 1, maxLength: 255, default: "download" },
      prepare: {
        type: "boolean",
        description:
          "zipgate's own: true reads every object whose CRC is unknown at creation (every entry classic), false none; unset, within the configured budget",
      },
    },
  },
  BoxCreated: {
    type: "object",
    required: ["download_url", "status_url", "expires_at", "name_conflicts"],
    additionalProperties: false,
    properties: {
      download_url: { type: "string", format: "uri" },
      status_url: { type: "string", format: "uri" },
      expires_at: { type: "string", pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$" },
      name_conflicts: {
        type: "array",
        items: {
          type: "array",
          items: {
            type: "object",
            required: ["id", "type", "original_name", "download_name"],
            additionalProperties: false,
            properties: {
              id: { type: "string" },
              type: { type: "string", enum: ["file", "folder"] },
              original_name: { type: "string" },
              download_name: { type: "string" },
            },
          },
        },
      },
      entry_forms: ref("EntryForms"),
    },
  },
  EntryForms: {
    type: "object",
    description: "zipgate's own: how many files have the classic form (CRC and sizes in the local header) and how many a data descriptor, and why",
    required: ["classic", "descriptor"],
    additionalProperties: false,
    properties: {
      classic: { type: "integer", minimum: 0 },
      descriptor: { type: "integer", minimum: 0 },
      descriptor_reasons: {
        type: "object",
        additionalProperties: false,
        properties: Object.fromEntries(
          ["over_byte_budget", "over_time_budget", "not_prepared", "read_failed", "deflated_large", "unknown_length", "gateway_busy"].map((r) => [
            r,
            { type: "integer", minimum: 1 },
          ]),
        ),
      },
      notice: { type: "string" },
    },
  },
  BoxStatus: {
    type: "object",
    required: ["total_file_count", "downloaded_file_count", "skipped_file_count", "skipped_folder_count", "state"],
    additionalProperties: false,
    properties: {
      total_file_count: { type: "integer", minimum: 0 },
      downloaded_file_count: { type: "integer", minimum: 0 },
      skipped_file_count: { type: "integer", minimum: 0 },
      skipped_folder_count: { type: "integer", minimum: 0 },
      state: { type: "string", enum: ["in_progress", "failed", "succeeded"] },
    },
  },
  BoxError: {
    type: "object",
    required: ["type", "status", "code", "message", "request_id"],
    additionalProperties: false,
    properties: {
      type: { const: "error" },
      status: { type: "integer" },
      code: { type: "string", description: "bad_request, unauthorized, access_denied_insufficient_permissions, not_found, zip_download_…_exceeded_limit, …" },
      message: { type: "string" },
      request_id: { type: "string" },
      context_info: { type: "object" },
    },
  },
  ZipkitSource: {
    type: "object",
    required: ["url"],
    additionalProperties: false,
    properties: { url: { type: "string", format: "uri" }, filename: { type: "string" } },
  },
  ZipkitObject: { type: "object", required: ["path"], additionalProperties: false, properties: { path: objectPath, filename: { type: "string" } } },
  ZipkitCreateRequest: {
    type: "object",
    required: ["bucket_name", "key"],
    additionalProperties: false,
    description: 'At least one entry between "urls" and "objects"',
    properties: {
      urls: { type: "array", items: ref("ZipkitSource") },
      objects: { type: "array", items: ref("ZipkitObject") },
      bucket_name: { type: "string", description: "A configured destination (ZIPGATE_DESTINATIONS)" },
      key: { type: "string", description: "Object key below the caller's prefix; no leading /, no . or .. segments" },
      service: { type: "string", enum: ["s3", "r2"], default: "s3" },
      metadata: { type: "object", additionalProperties: { type: ["string", "number", "boolean"] } },
    },
  },
  ZipkitJob: {
    type: "object",
    required: [
      "uuid",
      "status",
      "created_at",
      "started_at",
      "completed_at",
      "attempts",
      "bucket_name",
      "key",
      "service",
      "metadata",
      "urls",
      "result",
      "error",
      "webhook",
    ],
    additionalProperties: false,
    properties: {
      uuid: uuid,
      status: { type: "string", enum: ["none", "processing", "succeeded", "failed"] },
      created_at: dateTime,
      started_at: { oneOf: [dateTime, { type: "null" }] },
      completed_at: { oneOf: [dateTime, { type: "null" }] },
      attempts: { type: "integer", minimum: 0 },
      bucket_name: { type: "string" },
      key: { type: "string", description: "The full key written: the destination's prefix for the caller, then the requested key" },
      service: { type: "string", enum: ["s3", "r2"] },
      metadata: { type: "object", additionalProperties: { type: "string" } },
      urls: { type: "array", items: ref("ZipkitSource") },
      objects: { type: "array", items: ref("ZipkitObject") },
      result: {
        oneOf: [
          {
            type: "object",
            required: ["size", "etag", "bucket_name", "key"],
            additionalProperties: false,
            properties: {
              size: { type: "integer" },
              etag: { type: "string" },
              bucket_name: { type: "string" },
              key: { type: "string" },
              entry_forms: ref("EntryForms"),
            },
          },
          { type: "null" },
        ],
      },
      error: {
        oneOf: [
          {
            type: "object",
            required: ["type", "code", "message"],
            properties: {
              type: { type: "string" },
              code: { type: "string" },
              message: { type: "string" },
              url: { type: "string" },
              status: { type: "integer" },
            },
          },
          { type: "null" },
        ],
      },
      webhook: {
        oneOf: [
          {
            type: "object",
            required: ["state", "attempts"],
            properties: {
              id: { type: "string" },
              state: { type: "string", enum: ["pending", "delivered", "failed"] },
              attempts: { type: "integer" },
              last_status: { type: "integer" },
              last_error: { type: "string" },
              delivered_at: dateTime,
            },
          },
          { type: "null" },
        ],
      },
    },
  },
  ZipkitJobList: {
    type: "object",
    required: ["data", "next_cursor"],
    additionalProperties: false,
    properties: { data: { type: "array", items: ref("ZipkitJob") }, next_cursor: { oneOf: [uuid, { type: "null" }] } },
  },
  ZipkitError: {
    type: "object",
    required: ["error", "request_id"],
    additionalProperties: false,
    properties: {
      error: {
        type: "object",
        required: ["type", "code", "message"],
        properties: {
          type: { type: "string", enum: ["invalid_request_error", "authentication_error", "not_found_error", "api_error"] },
          code: { type: "string" },
          message: { type: "string" },
        },
      },
      request_id: { type: "string" },
    },
  },
  Live: { type: "object", required: ["ok", "version"], additionalProperties: false, properties: { ok: { const: true }, version: { type: "string" } } },
  Ready: {
    type: "object",
    required: ["ready"],
    additionalProperties: false,
    properties: { ready: { type: "boolean" }, reason: { type: "string", description: "shutting down, or the store's error code (storage_credentials, …)" } },
  },
};

const headers: Record<string, Schema> = {
  "X-Request-Id": { description: "The request id (the client's, when it sent a well-formed one); also in the log lines", schema: { type: "string" } },
  "Content-Disposition": { description: "attachment; filename=\"…\"; filename*=UTF-8''…", schema: { type: "string", pattern: "^attachment;" } },
  "Content-Length": { description: "Exact, before the first byte (absent when chunked)", schema: { type: "string", pattern: "^\\d+$" } },
  "Content-Range": { description: "bytes <first>-<last>/<total>", schema: { type: "string", pattern: "^bytes \\d+-\\d+/\\d+$" } },
  ETag: { description: "Strong validator of the archive's bytes", schema: { type: "string", pattern: '^"[^"]+"$' } },
  "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "string", pattern: "^\\d+$" } },
};

const bearer = [{ bearer: [] }];
const body = (schema: string): Schema => ({ required: true, content: { "application/json": { schema: ref(schema) } } });
const pathParam = (name: string, schema: Schema = uuid): Schema => ({ name, in: "path", required: true, schema });
const conditional = ["Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"].map((name) => ({
  name,
  in: "header",
  required: false,
  schema: { type: "string" },
}));

function paths(): Record<string, Schema> {
  const bitpaketDownload = {
    tags: ["BitPaket"],
    parameters: [pathParam("ball_id"), { name: "zipball", in: "query", required: true, allowEmptyValue: true, schema: { type: "string" } }, ...conditional],
    responses: archiveResponses("BitpaketError", ["410"]),
  };
  const boxContent = {
    tags: ["Box"],
    description:
      "Serves one download by default (Box's single use). The claiming client may GET again within 60 s after a ranged or failed first body. Files unreadable since creation are skipped and counted.",
    parameters: [pathParam("id"), ...conditional],
    responses: archiveResponses("BoxError", ["429"]),
  };
  return {
    "/v2/zipball": {
      post: {
        tags: ["BitPaket"],
        summary: "Create a zipball",
        security: bearer,
        requestBody: body("BitpaketCreateRequest"),
        responses: {
          "201": json(ref("BitpaketCreated"), "Created; every object was found and the limits hold", { "X-Request-Id": header("X-Request-Id") }),
          ...errors("BitpaketError", ["400", "401", "403", "404", "413", "502", "503", "504"]),
        },
      },
    },
    "/v2/zipball/{ball_id}": {
      delete: {
        tags: ["BitPaket"],
        summary: "Revoke a zipball (its owner's key)",
        security: bearer,
        parameters: [pathParam("ball_id")],
        responses: {
          "200": json(ref("BitpaketRevoked"), "Revoked: 404 here at once, on other replicas within 60 s"),
          ...errors("BitpaketError", ["401", "404"]),
        },
      },
    },
    "/{ball_id}.zip": { get: { ...bitpaketDownload, summary: "Download a zipball" }, head: { ...bitpaketDownload, summary: "A zipball's headers" } },
    "/v2/objects": {
      post: {
        tags: ["BitPaket"],
        summary: "Register an object id for a path",
        security: bearer,
        requestBody: body("ObjectIdRequest"),
        responses: {
          "201": json(ref("ObjectId"), "Registered"),
          "200": json(ref("ObjectId"), "Already registered: the same id"),
          ...errors("BitpaketError", ["400", "401", "403", "404"]),
        },
      },
    },
    "/v2/objects/{id}": {
      get: {
        tags: ["BitPaket"],
        summary: "Resolve an object id",
        security: bearer,
        parameters: [pathParam("id", { type: "string" })],
        responses: { "200": json(ref("ObjectId"), "The object's path"), ...errors("BitpaketError", ["401", "404"]) },
      },
    },
    "/2.0/zip_downloads": {
      post: {
        tags: ["Box"],
        summary: "Create a zip download",
        security: bearer,
        requestBody: body("BoxCreateRequest"),
        responses: {
          "202": json(ref("BoxCreated"), "Created", { "X-Request-Id": header("X-Request-Id") }),
          ...errors("BoxError", ["400", "401", "403", "404", "413", "502", "503"]),
        },
      },
    },
    "/2.0/zip_downloads/{id}/content": { get: { ...boxContent, summary: "Download (once)" }, head: { ...boxContent, summary: "Headers of the download" } },
    "/2.0/zip_downloads/{id}/status": {
      get: {
        tags: ["Box"],
        summary: "Progress of a download (404 before it starts)",
        security: bearer,
        parameters: [pathParam("id")],
        responses: { "200": json(ref("BoxStatus"), "The download's progress"), ...errors("BoxError", ["401", "404"]) },
      },
    },
    "/api/v1/zips": {
      post: {
        tags: ["ZipKit"],
        summary: "Create a job that writes a zip into a bucket",
        security: bearer,
        requestBody: body("ZipkitCreateRequest"),
        responses: { "201": json(ref("ZipkitJob"), "Queued (status none)"), ...errors("ZipkitError", ["400", "401", "403", "413", "503"]) },
      },
      get: {
        tags: ["ZipKit"],
        summary: "The caller's jobs, newest first",
        security: bearer,
        parameters: [
          { name: "limit", in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: 100, default: 20 } },
          { name: "cursor", in: "query", required: false, schema: uuid },
        ],
        responses: { "200": json(ref("ZipkitJobList"), "A page of jobs"), ...errors("ZipkitError", ["400", "401"]) },
      },
    },
    "/api/v1/zips/{uuid}": {
      get: {
        tags: ["ZipKit"],
        summary: "A job",
        security: bearer,
        parameters: [pathParam("uuid")],
        responses: { "200": json(ref("ZipkitJob"), "The job"), ...errors("ZipkitError", ["401", "404"]) },
      },
    },
    "/livez": { get: { tags: ["Operations"], summary: "Liveness: the process answers", responses: { "200": json(ref("Live"), "Alive") } } },
    "/healthz": { get: { tags: ["Operations"], summary: "Same as /livez", responses: { "200": json(ref("Live"), "Alive") } } },
    "/readyz": {
      get: {
        tags: ["Operations"],
        summary: "Readiness: taking traffic and the store answers (checked at most every 3 s)",
        responses: { "200": json(ref("Ready"), "Ready"), "503": json(ref("Ready"), "Not ready: shutting down, or the store fails") },
      },
    },
    "/metrics": {
      get: {
        tags: ["Operations"],
        summary: "Prometheus metrics (text exposition format)",
        responses: { "200": { description: "The scrape", content: { "text/plain": { schema: { type: "string" } } } } },
      },
    },
    "/openapi.json": {
      get: {
        tags: ["Operations"],
        summary: "This document",
        responses: { "200": { description: "OpenAPI 3.1", content: { "application/json": { schema: { type: "object" } } } } },
      },
    },
  };
}

export function openApiDocument(publicUrl: string): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "zipgate",
      version: VERSION,
      summary: "Streaming zip downloads from object storage, in three API flavours",
      license: { name: "MIT", identifier: "MIT" },
    },
    servers: [{ url: publicUrl }],
    tags: [
      { name: "BitPaket", description: "ZipBall shape: POST /v2/zipball, GET /<ball_id>.zip?zipball" },
      { name: "Box", description: "Box zip downloads: POST /2.0/zip_downloads, then content and status" },
      { name: "ZipKit", description: "Jobs that write a zip into a bucket" },
      { name: "Operations", description: "Probes, metrics and this document" },
    ],
    paths: paths(),
    components: {
      schemas,
      headers,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "An API key (ZIPGATE_API_KEYS, or the one generated at first start)" } },
    },
  };
}
