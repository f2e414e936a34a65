#!/usr/bin/env bash
# Builds the spaas base image without pulling anything: debootstrap a minimal Debian bookworm,
# add Python 3, Java 17 (headless), CA certificates and tini in a chroot, trust the host's extra
# CA certificates (TLS to package indexes may be intercepted; without them pip in a container
# fails), then `docker import` the tree.
#   mkbase.sh IMAGE [MIRROR]
# On machines that can pull, `docker build deploy/images/base` gives the same image from
# debian:bookworm-slim.
set -euo pipefail
IMAGE="$1"
MIRROR="${2:-http://deb.debian.org/debian}"
PACKAGES="python3 python3-venv python3-pip openjdk-17-jre-headless ca-certificates tini procps"
DIR="$(mktemp -d /var/tmp/spaas-base.XXXXXX)"
cleanup() {
  umount "$DIR/proc" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

debootstrap --variant=minbase bookworm "$DIR" "$MIRROR"
mount -t proc proc "$DIR/proc"
cp /etc/resolv.conf "$DIR/etc/resolv.conf"
# Java's postinst needs the man directories minbase leaves out.
mkdir -p "$DIR"/usr/share/man/man1
chroot "$DIR" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$DIR/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$DIR/usr/local/share/ca-certificates/"
fi
chroot "$DIR" update-ca-certificates
chroot "$DIR" apt-get clean
rm -rf "$DIR"/var/lib/apt/lists/* "$DIR"/var/cache/apt/*.bin "$DIR"/tmp/*
: > "$DIR/etc/resolv.conf"
umount "$DIR/proc"
tar -C "$DIR" -c . | docker import \
  -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENTRYPOINT ["/usr/bin/tini", "--"]' \
  -c 'CMD ["/bin/bash"]' \
  - "$IMAGE"
echo "built $IMAGE"
