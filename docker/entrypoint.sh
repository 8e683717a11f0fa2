#!/bin/sh
# Starts zipgate as the owner of its data folder, so that
#   docker run -v "$PWD/data:/data" …
# works with a host folder whatever user owns it (the process can then write its state,
# and the files it creates belong to that user on the host). Run with --user to choose
# yourself: then this script changes nothing.
set -eu

if [ "$(id -u)" != "0" ]; then
  exec "$@"
fi

# The folder store only: an s3:// store has no folder to own.
data="${ZIPGATE_STORAGE:-/data}"
case "$data" in
  file://*) data="${data#file://}" ;;
  *://*) data="" ;;
esac

uid=1000 # the image's "node" user
gid=1000
if [ -n "$data" ] && [ -d "$data" ]; then
  owner_uid="$(stat -c %u "$data")"
  owner_gid="$(stat -c %g "$data")"
  if [ "$owner_uid" != "0" ]; then
    uid="$owner_uid"
    gid="$owner_gid"
  elif [ -z "$(ls -A "$data")" ]; then
    # An empty folder owned by root: one Docker made for the mount point or a new volume.
    chown "$uid:$gid" "$data"
  else
    echo "zipgate: $data is owned by root and not empty; it runs as uid $uid and may not write there." >&2
    echo "zipgate: chown the host folder to your user, or start the container with --user \"\$(id -u):\$(id -g)\"." >&2
  fi
fi
# Never as root: the owner's uid and gid, no supplementary groups.
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
