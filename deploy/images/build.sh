#!/usr/bin/env bash
# Builds every image the docker-compose stack needs, without pulling from any registry:
#   spaas-base:<hash>              debootstrap + docker import (base/mkbase.sh)
#   spaas-spark:<ver>[-<hash>]     one per Spark version (spark/Dockerfile)
#   spaas-services:latest|<hash>   the control plane (services/Dockerfile)
#   spaas-datastores:latest|<hash> Redis and etcd from Debian's packages (datastores/Dockerfile)
# and the external network `spaas-platform` the compose file and SIG containers share.
# Each image is tagged by a hash of its inputs and skipped when that tag exists, so a re-run with
# nothing changed takes seconds. Python packages are installed on the host side of the build
# (`pip install --target` in a throwaway container of the base image, with its own Python, cached
# under $SPAAS_CACHE/images: pip's cache and the installed trees), so docker build never downloads
# pyspark and a rebuild after a code change only copies files.
#   deploy/images/build.sh [SPARK_VERSION...]     (default: $SPAAS_SPARK_VERSIONS or 3.5.9,4.1.4)
set -euo pipefail
shopt -s inherit_errexit
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${SPAAS_CACHE:-$HOME/.cache/spaas}/images"
NETWORK="${SPAAS_DOCKER_NETWORK:-spaas-platform}"
if [ $# -gt 0 ]; then VERSIONS=("$@"); else IFS=, read -r -a VERSIONS <<< "${SPAAS_SPARK_VERSIONS:-3.5.9,4.1.4}"; fi
mkdir -p "$CACHE"
# One build at a time per cache (CI, tests and an operator may call it together).
exec 9>"$CACHE/.lock"
flock 9

log() { printf '\033[1m[images]\033[0m %s\n' "$*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
digest() { sha256sum | cut -c1-12; }
# The Spark image carries only what SIG containers run (the library and the agent), so changes to
# the other services do not change Spark images, nor therefore any SIG's build key.
SPARK_CODE=(spaas services/__init__.py services/agent)
ALL_CODE=(spaas services)
code_hash() { (cd "$ROOT" && find "$@" -name '*.py' -print0 | sort -z | xargs -0 sha256sum) | digest; }

# -- base ------------------------------------------------------------------------------------
base_hash="$(cat "$HERE/base/mkbase.sh" /usr/local/share/ca-certificates/*.crt 2>/dev/null | digest)"
BASE="spaas-base:$base_hash"
if have "$BASE"; then log "$BASE: up to date"; else log "$BASE: building (debootstrap)"; "$HERE/base/mkbase.sh" "$BASE"; fi
docker tag "$BASE" spaas-base:latest
base_id="$(docker image inspect -f '{{.Id}}' "$BASE" | cut -c8-19)"

# -- Python trees, installed with the base image's own Python ----------------------------------
install_tree() {  # install_tree NAME PIP-ARGS... -> prints the tree's directory
  local name="$1"; shift
  local dir="$CACHE/trees/$name"
  if [ ! -f "$dir/.complete" ]; then
    log "installing $name: $*"
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$CACHE/pip" "$CACHE/trees"
    cp "$ROOT/requirements.txt" "$CACHE/trees/requirements.txt"
    docker run --rm -v "$CACHE/pip:/root/.cache/pip" -v "$CACHE/trees:/trees" "$BASE" \
      python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "/trees/$name.tmp" "$@" >&2
    mv "$dir.tmp" "$dir"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

context() {  # context NAME DOCKERFILE CODE-DIRS TREE:DEST... -> a fresh build context (hard links, no copies)
  local ctx="$CACHE/ctx/$1" dockerfile="$2" code="$3"; shift 3
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$dockerfile" "$ctx/Dockerfile"
  local pair
  for pair in "$@"; do cp -al "${pair%%:*}" "$ctx/${pair##*:}"; done
  mkdir -p "$ctx/app"
  (cd "$ROOT" && find $code -name '*.py' -print0 | tar -c --null -T - -f -) | tar -x -C "$ctx/app" -f -
  echo "$ctx"
}

req_hash="$(cat "$ROOT/requirements.txt" <(echo "$base_id") | digest)"
code="$(code_hash "${ALL_CODE[@]}")"
spark_code="$(code_hash "${SPARK_CODE[@]}")"

# -- Redis and etcd ----------------------------------------------------------------------------
ds_hash="$(cat "$HERE/datastores/Dockerfile" <(echo "$base_id") | digest)"
if have "spaas-datastores:$ds_hash"; then log "spaas-datastores:$ds_hash: up to date"; else
  log "spaas-datastores:$ds_hash: building"
  docker build -q --build-arg "BASE=$BASE" -t "spaas-datastores:$ds_hash" "$HERE/datastores" >/dev/null
fi
docker tag "spaas-datastores:$ds_hash" spaas-datastores:latest

# -- services ----------------------------------------------------------------------------------
svc_hash="$(cat "$HERE/services/Dockerfile" <(echo "$req_hash $code $base_id") | digest)"
if have "spaas-services:$svc_hash"; then log "spaas-services:$svc_hash: up to date"; else
  site="$(install_tree "site-$req_hash" -r /trees/requirements.txt)"
  ctx="$(context services "$HERE/services/Dockerfile" "${ALL_CODE[*]}" "$site:site")"
  log "spaas-services:$svc_hash: building"
  docker build -q --build-arg "BASE=$BASE" -t "spaas-services:$svc_hash" "$ctx" >/dev/null
  rm -rf "$ctx"
fi
docker tag "spaas-services:$svc_hash" spaas-services:latest

# -- one Spark image per version -----------------------------------------------------------------
for version in "${VERSIONS[@]}"; do
  spark_hash="$(cat "$HERE/spark/Dockerfile" "$ROOT/services/builder/cds.py" <(echo "$req_hash $spark_code $base_id $version") | digest)"
  tag="spaas-spark:$version-$spark_hash"
  if have "$tag"; then log "$tag: up to date"; else
    site="$(install_tree "site-$req_hash" -r /trees/requirements.txt)"
    spark="$(install_tree "pyspark-$version-$base_id" "pyspark==$version")"
    ctx="$(context "spark-$version" "$HERE/spark/Dockerfile" "${SPARK_CODE[*]}" "$site:site" "$spark:spark" "$ROOT/services/builder/cds.py:cds.py")"
    log "$tag: building"
    docker build -q --build-arg "BASE=$BASE" --build-arg "SPARK_VERSION=$version" -t "$tag" "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
  docker tag "$tag" "spaas-spark:$version"
done

# Older tags of these images go (an image still used by a container or a SIG image stays).
prune() {  # prune REPO KEEP-TAG-PREFIX CURRENT-TAG
  local old
  for old in $(docker image ls "$1" --format '{{.Tag}}'); do
    case "$old" in "$3"|latest) ;; "$2"*) docker rmi "$1:$old" >/dev/null 2>&1 || true ;; esac
  done
}
prune spaas-services "" "$svc_hash"
for version in "${VERSIONS[@]}"; do
  prune spaas-spark "$version-" "$version-$(cat "$HERE/spark/Dockerfile" "$ROOT/services/builder/cds.py" <(echo "$req_hash $spark_code $base_id $version") | digest)"
done

docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create --label spaas.stack=spaas "$NETWORK" >/dev/null
log "ready: spaas-services:latest ($svc_hash), spark ${VERSIONS[*]}, network $NETWORK"
