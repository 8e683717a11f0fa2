import { readFileSync } from "node:fs";

/**
 * The package's version, read once from package.json next to `src/` or `dist/` (the image
 * copies it too), so `--version`, the startup line and `/livez` say the same.
 */
export const VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
})();
