// --against <ref>: another build of zipgate, from a git worktree of its own, built once per
// commit and kept in .cache/bench-against/<commit> for the next run.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const git = (repo, ...args) => execFileSync("git", ["-C", repo, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();

/**
 * Checks out `ref` into a worktree and builds it: its own `npm run build`, with this
 * checkout's node_modules when both package-lock.json files are the same (else its own
 * `npm ci`). Returns the checkout and a label such as `main@1a2b3c4`.
 */
export function buildAgainst(repo, ref, say) {
  let commit;
  try {
    commit = git(repo, "rev-parse", "--verify", `${ref}^{commit}`);
  } catch {
    throw new Error(`--against: ${ref} is not a commit of this repository`);
  }
  // A ref that is the commit itself (or a prefix of it) is shown by its short form alone.
  const label = commit.startsWith(ref) ? commit.slice(0, 7) : `${ref}@${commit.slice(0, 7)}`;
  const dir = join(repo, ".cache", "bench-against", commit);
  const built = join(dir, ".bench-built");
  if (existsSync(built) && existsSync(join(dir, "dist", "main.js"))) {
    say(`against ${label}: reusing the build in ${dir}`);
    return { checkout: dir, label, commit };
  }
  say(`against ${label}: checking out and building it in ${dir}`);
  rmSync(dir, { recursive: true, force: true });
  try {
    git(repo, "worktree", "prune");
  } catch {}
  mkdirSync(join(repo, ".cache", "bench-against"), { recursive: true });
  git(repo, "worktree", "add", "--detach", "--force", dir, commit);
  const lock = (d) => {
    try {
      return readFileSync(join(d, "package-lock.json"), "utf8");
    } catch {
      return null;
    }
  };
  const sameDeps = lock(dir) !== null && lock(dir) === lock(repo) && existsSync(join(repo, "node_modules"));
  if (sameDeps) symlinkSync(join(repo, "node_modules"), join(dir, "node_modules"), "dir");
  else execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  execFileSync("npm", ["run", "--silent", "build"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  writeFileSync(built, `${new Date().toISOString()}\n`);
  return { checkout: dir, label, commit };
}
