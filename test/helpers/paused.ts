import { connect, type Socket } from "node:net";

/**
 * A GET on a raw socket that reads the head, then nothing until `resume()`. `closed` settles
 * (with the body bytes read) when the connection ends, whoever ends it.
 */
export function pausedGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; head: string; closed: Promise<number>; resume(): Promise<number> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(Number(u.port), u.hostname);
    socket.on("error", () => {});
    let head = "";
    socket.once("connect", () =>
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\n${Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join("")}connection: close\r\n\r\n`,
      ),
    );
    const onData = (chunk: Buffer): void => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      socket.pause();
      let received = Buffer.byteLength(head.slice(end + 4), "latin1");
      const closed = new Promise<number>((r) => socket.once("close", () => r(received)));
      resolve({
        status: Number(head.slice(9, 12)),
        head: head.slice(0, end),
        closed,
        resume: () => {
          socket.on("data", (more: Buffer) => {
            received += more.length;
          });
          socket.resume();
          return closed;
        },
      });
    };
    socket.on("data", onData);
    socket.once("close", () => reject(new Error("closed before the head")));
  });
}
