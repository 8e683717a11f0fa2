import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A real HTTP origin for URL sources: files (HEAD, Range, ETag), a 404, a
 * slow file held until released, a redirect chain, a redirect to a private
 * address, one that lies about its length, one that resets mid-body, and one
 * without any length.
 */
export interface Origin {
  url: string;
  files: Map<string, Buffer>;
  /** GET requests per path. */
  gets: Map<string, number>;
  /** Lets the slow file finish. */
  release(): void;
  close(): Promise<void>;
}

export async function startOrigin(): Promise<Origin> {
  const files = new Map<string, Buffer>();
  const gets = new Map<string, number>();
  let release: () => void = () => {};
  let released = new Promise<void>((r) => {
    release = r;
  });
  const etag = (b: Buffer) => `"${createHash("md5").update(b).digest("hex")}"`;

  const serveFile = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const headers = { etag: etag(body), "last-modified": new Date(1_700_000_000_000).toUTCString(), "accept-ranges": "bytes" };
    if (range) {
      const start = Number(range[1]);
      const end = range[2] === "" ? body.length - 1 : Math.min(Number(range[2]), body.length - 1);
      res.writeHead(206, { ...headers, "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${body.length}` });
      res.end(req.method === "HEAD" ? undefined : body.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { ...headers, "content-length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
  };

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] as string;
    if (req.method === "GET") gets.set(path, (gets.get(path) ?? 0) + 1);
    const file = /^\/files\/(.+)$/.exec(path);
    if (file) {
      const body = files.get(decodeURIComponent(file[1] as string));
      if (!body) {
        res.writeHead(404).end("not found");
        return;
      }
      return serveFile(req, res, body);
    }
    const redirect = /^\/redirect\/(\d+)$/.exec(path);
    if (redirect) {
      const n = Number(redirect[1]);
      res.writeHead(302, { location: n <= 1 ? "/files/a.txt" : `/redirect/${n - 1}` }).end();
      return;
    }
    switch (path) {
      case "/missing":
        res.writeHead(404).end("gone");
        return;
      case "/to-private":
        res.writeHead(302, { location: "http://10.1.2.3/secret" }).end();
        return;
      case "/slow": {
        const body = files.get("slow.bin") ?? Buffer.alloc(0);
        if (req.method === "HEAD") return serveFile(req, res, body);
        res.writeHead(200, { "content-length": body.length, etag: etag(body) });
        res.write(body.subarray(0, 1024));
        void released.then(() => res.end(body.subarray(1024)));
        return;
      }
      case "/liar": {
        // Says 100,000 bytes, sends 1,000 and ends the connection.
        res.writeHead(200, { "content-length": 100_000 });
        if (req.method === "HEAD") return void res.end();
        res.write(Buffer.alloc(1000, 1));
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      case "/reset": {
        const size = 12 * 1024 * 1024;
        res.writeHead(200, { "content-length": size });
        if (req.method === "HEAD") return void res.end();
        // More than a multipart part, then a reset.
        const chunk = Buffer.alloc(1024 * 1024, 7);
        let sent = 0;
        const pump = (): void => {
          if (sent >= 10 * 1024 * 1024) return void res.socket?.destroy();
          sent += chunk.length;
          if (res.write(chunk)) setImmediate(pump);
          else res.once("drain", pump);
        };
        pump();
        return;
      }
      case "/no-length": {
        if (req.method === "HEAD") return void res.writeHead(200, { "transfer-encoding": "chunked" }).end();
        res.writeHead(200, { "transfer-encoding": "chunked" });
        res.write("streamed ");
        res.end("without a length");
        return;
      }
      case "/no-length-big": {
        // 2 MiB with no length given, ever.
        res.writeHead(200, { "transfer-encoding": "chunked" });
        if (req.method === "HEAD") return void res.end();
        for (let i = 0; i < 32; i++) res.write(Buffer.alloc(64 * 1024, 3));
        res.end();
        return;
      }
      case "/grows": {
        // Says 16 bytes at creation, then sends 2 MiB without a length.
        if (req.method === "HEAD") return void res.writeHead(200, { "content-length": 16 }).end();
        res.writeHead(200, { "transfer-encoding": "chunked" });
        for (let i = 0; i < 32; i++) res.write(Buffer.alloc(64 * 1024, 4));
        res.end();
        return;
      }
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    files,
    gets,
    release: () => {
      release();
      released = Promise.resolve();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
