#!/bin/sh
# Remove a spaas Docker installation completely: the compose services and their volumes (etcd,
# Redis, spaas-state), every SIG container and SIG network of the stack, the platform network, and
# the images (SIG images, spaas-spark, spaas-services, spaas-datastores, spaas-base).
#
#   deploy/uninstall.sh                     everything (run from anywhere)
#   deploy/uninstall.sh --keep-base-images  keep spaas-base/-datastores/-services/-spark (a later
#                                           deploy/images/build.sh is then fast); SIG images still go
#
# Honours the compose variables of the installation: COMPOSE_PROJECT_NAME, SPAAS_DOCKER_STACK,
# SPAAS_NETWORK, SPAAS_STATE_VOLUME. Idempotent: what is already gone is skipped.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STACK=${SPAAS_DOCKER_STACK:-spaas}
NETWORK=${SPAAS_NETWORK:-spaas-platform}
VOLUME=${SPAAS_STATE_VOLUME:-spaas-state}
KEEP_BASE=0
[ "${1:-}" = "--keep-base-images" ] && KEEP_BASE=1
if command -v docker-compose >/dev/null 2>&1; then COMPOSE="docker-compose"; else COMPOSE="docker compose"; fi
say() { printf '[uninstall] %s\n' "$*"; }

say "stopping the platform (compose project ${COMPOSE_PROJECT_NAME:-$(basename "$ROOT")}) and removing its volumes"
(cd "$ROOT" && $COMPOSE down -v --remove-orphans --timeout 20) || say "compose down failed; going on"
ids=$(docker ps -aq --filter "label=spaas.stack=$STACK")
[ -n "$ids" ] && { say "removing SIG containers: $(echo $ids | wc -w)"; docker rm -f $ids >/dev/null; }
nets=$(docker network ls -q --filter "label=spaas.stack=$STACK")
[ -n "$nets" ] && { say "removing SIG networks: $(echo $nets | wc -w)"; docker network rm $nets >/dev/null || true; }
docker network rm "$NETWORK" >/dev/null 2>&1 && say "removed network $NETWORK" || true
docker volume rm "$VOLUME" >/dev/null 2>&1 && say "removed volume $VOLUME" || true
images=$(docker images -q --filter "label=spaas.build_key" | sort -u)
[ -n "$images" ] && { say "removing SIG images: $(echo $images | wc -w)"; docker rmi -f $images >/dev/null || true; }
if [ "$KEEP_BASE" = 0 ]; then
  for repo in spaas-spark spaas-services spaas-datastores spaas-base; do
    refs=$(docker images --format '{{.Repository}}:{{.Tag}}' "$repo" | grep -v '<none>' || true)
    [ -n "$refs" ] && { say "removing $repo images"; docker rmi -f $refs >/dev/null || true; }
  done
fi
say "done"
