import { Hono } from "hono";
import { safeSegment } from "../../archive/names.js";
import { checkScopes, inScope } from "../../auth.js";
import { GatewayError } from "../../errors.js";
import { downloadContext, serveDownload } from "../../http/download.js";
import type { RequestedItem } from "../../manifest/schema.js";
import { keyFromPath } from "../../storage/keys.js";
import { mapInSlices } from "../../util/breather.js";
import { formsView } from "../../zipball/forms.js";
import { jsonObject, onlyFields, optionalString } from "../body.js";
import type { ApiDeps, AppEnv } from "../deps.js";

const OBJECT_FIELDS = ["path", "id", "folder", "url", "name", "crc32"] as const;

/**
 * The BitPaket ZipBall flavour:
 * `POST /v2/zipball`, `GET|HEAD /<ball_id>.zip?zipball`, and object ids
 * (`POST /v2/objects`, `GET /v2/objects/<id>`).
 */
export function bitpaketRoutes(deps: ApiDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/v2/zipball", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const body = await jsonObject(c);
    onlyFields(body, ["objects", "name", "expires_in", "compression", "prepare"], "the request");
    const { objects } = body;
    if (!Array.isArray(objects) || objects.length === 0) {
      throw new GatewayError(400, "invalid_objects", `"objects" must be a non-empty array`);
    }
    if (objects.length > deps.maxItems) {
      throw new GatewayError(400, "too_many_files", `at most ${deps.maxItems} objects may be requested`, { details: { limit: deps.maxItems } });
    }
    const name = optionalString(body.name, "name", 255);
    const expiresIn = body.expires_in;
    if (expiresIn !== undefined && (!Number.isInteger(expiresIn) || (expiresIn as number) < 1)) {
      throw new GatewayError(400, "invalid_field", `"expires_in" must be a positive whole number of seconds`, { details: { field: "expires_in" } });
    }
    const compression = body.compression ?? "store";
    if (compression !== "store" && compression !== "deflate") {
      throw new GatewayError(400, "invalid_field", `"compression" must be "store" or "deflate"`, { details: { field: "compression" } });
    }
    const prepare = body.prepare;
    if (prepare !== undefined && typeof prepare !== "boolean")
      throw new GatewayError(400, "invalid_field", `"prepare" must be true or false`, { details: { field: "prepare" } });

    const items = await parseObjects(objects, deps, caller.scopes);
    const { zipball, resolution, forms } = await deps.service.create({
      flavour: "bitpaket",
      items,
      filename: name === undefined ? undefined : safeSegment(name),
      compression,
      owner: caller.keyId,
      scopes: caller.scopes,
      expiresIn: expiresIn as number | undefined,
      signal: c.req.raw.signal,
      prepare,
    });
    const id = zipball.manifest.id;
    const path = `/${id}.zip?zipball`;
    return c.json(
      {
        success: true,
        data: {
          ball_id: id,
          urls: {
            url: `${deps.publicUrl}${path}`,
            domains: deps.domains.map((d) => ({ domain: d.replace(/^https?:\/\//, ""), url: `${d.startsWith("http") ? d : `https://${d}`}${path}` })),
          },
          expires_at: new Date(zipball.manifest.exp * 1000).toISOString(),
          // How many files have the classic form, and why the others have a data descriptor.
          entry_forms: formsView(forms),
          // An origin that gives no length makes the archive's length unknowable in advance.
          ...(resolution.entries.some((e) => e.unknownSize)
            ? { exact_length: false, notice: "a URL object has no known length: the archive is sent chunked, without Content-Length or Range" }
            : { exact_length: true }),
        },
      },
      201,
    );
  });

  // Revokes a zipball (its owner's key only): 404 on this replica at once, on the others
  // within the zipball cache time (60 s).
  app.delete("/v2/zipball/:id", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const id = c.req.param("id");
    await deps.service.revoke(id, caller.keyId);
    return c.json({ success: true, data: { ball_id: id, revoked: true } });
  });

  app.post("/v2/objects", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const body = await jsonObject(c);
    onlyFields(body, ["path"], "the request");
    const key = keyFromPath(body.path, "path");
    checkScopes(caller.scopes, [key]);
    await deps.service.storage.stat(key);
    const { id, created } = await deps.ids.register(key);
    return c.json({ success: true, data: { id, path: `/${key}` } }, created ? 201 : 200);
  });

  app.get("/v2/objects/:id", async (c) => {
    const caller = deps.keys.authenticate(c.req.header("authorization"));
    const id = c.req.param("id");
    const key = await deps.ids.resolve(id);
    // An id outside the caller's scopes is answered as unknown: its path is not the caller's to learn.
    if (key === undefined || !inScope(caller.scopes, key)) throw new GatewayError(404, "not_found", "no object has this id");
    return c.json({ success: true, data: { id, path: `/${key}` } });
  });

  app.on(["GET", "HEAD"], "/:file{[^/]+\\.zip}", async (c) => {
    if (c.req.query("zipball") === undefined) throw new GatewayError(404, "not_found", "not found");
    const id = c.req.param("file").slice(0, -".zip".length);
    const download = await deps.service.open(id);
    if (download.zipball.manifest.flavour !== "bitpaket") throw new GatewayError(404, "not_found", "zipball not found");
    return serveDownload(deps.service, download, downloadContext(c, deps));
  });

  return app;
}

/** Each object: exactly one of path, id, folder; ids resolved through the index. */
async function parseObjects(objects: unknown[], deps: ApiDeps, scopes: string[] | undefined): Promise<RequestedItem[]> {
  const unknownIds: string[] = [];
  const items = await Promise.all(
    await mapInSlices(objects, async (o, index): Promise<RequestedItem | undefined> => {
      const where = `objects[${index}]`;
      if (typeof o !== "object" || o === null || Array.isArray(o)) {
        throw new GatewayError(400, "invalid_object", `${where} must be an object`, { details: { index } });
      }
      const obj = o as Record<string, unknown>;
      onlyFields(obj, OBJECT_FIELDS, where);
      const given = (["path", "id", "folder", "url"] as const).filter((k) => obj[k] !== undefined);
      if (given.length !== 1) {
        throw new GatewayError(400, "invalid_object", `${where} must have exactly one of "path", "id", "folder" or "url"`, { details: { index } });
      }
      const name = optionalString(obj.name, `${where}.name`);
      const crc32 = parseCrc32(obj.crc32, `${where}.crc32`, index);
      if (obj.url !== undefined) {
        if (typeof obj.url !== "string") throw new GatewayError(400, "invalid_url", `${where}.url must be a string`, { details: { index } });
        return { type: "url", url: obj.url, name, crc32 };
      }
      if (obj.folder !== undefined) {
        if (crc32 !== undefined)
          throw new GatewayError(400, "invalid_field", `${where}.crc32 is for single objects, not folders`, { details: { index, field: "crc32" } });
        return { type: "folder", key: keyFromPath(obj.folder, "folder", `${where}.folder`), name };
      }
      if (obj.path !== undefined) return { type: "file", key: keyFromPath(obj.path, "path", `${where}.path`), name, crc32 };
      if (typeof obj.id !== "string") throw new GatewayError(400, "invalid_id", `${where}.id must be a string`, { details: { index } });
      const key = await deps.ids.resolve(obj.id);
      if (key === undefined || !inScope(scopes, key)) {
        unknownIds.push(obj.id);
        return undefined;
      }
      return { type: "file", key, name, crc32 };
    }),
  );
  if (unknownIds.length > 0) {
    throw new GatewayError(404, "not_found", `${unknownIds.length} of the requested ids are unknown`, { details: { missing_ids: unknownIds } });
  }
  return items as RequestedItem[];
}

const CRC32_HEX = /^[0-9a-fA-F]{8}$/;

/** A CRC32 as mod_zip takes it (8 hex digits) or as a whole number below 2^32. */
function parseCrc32(value: unknown, where: string, index: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string" && CRC32_HEX.test(value)) return Number.parseInt(value, 16);
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return value;
  throw new GatewayError(400, "invalid_field", `${where} must be 8 hex digits or a whole number below 2^32`, { details: { index, field: "crc32" } });
}
