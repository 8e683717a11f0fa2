import { existsSync } from "node:fs";

/** Debian installs nginx in /usr/sbin, which is not on every user's PATH. */
export const NGINX = existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx";
