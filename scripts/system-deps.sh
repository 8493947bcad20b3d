#!/usr/bin/env bash
# Installs what driftline needs from Debian's packages, only when it is missing:
#   java (17+) and mvn for the local Kafka broker; with --postgres, the PostgreSQL server
#   that the registry tests start on a free port; with --compose, Debian's docker-compose
#   (CI checks docker-compose.yml with it); with --containers, podman, runc, debootstrap,
#   catatonit, CNI's dnsname plugin and docker-compose (`make compose-test` runs the stack in containers).
#   Shared by `make test`, `make compose-test` and `.ci/run`.
set -euo pipefail

want=()
command -v java >/dev/null 2>&1 || want+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || want+=(maven)
for arg in "$@"; do
  case "$arg" in
    --postgres) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want+=(postgresql) ;;
    --compose) command -v docker-compose >/dev/null 2>&1 || want+=(docker-compose) ;;
    --containers)
      command -v docker-compose >/dev/null 2>&1 || want+=(docker-compose)
      command -v podman >/dev/null 2>&1 || want+=(podman)
      command -v runc >/dev/null 2>&1 || want+=(runc)
      command -v debootstrap >/dev/null 2>&1 || want+=(debootstrap)
      [[ -x /usr/libexec/podman/catatonit ]] || want+=(catatonit)
      # names of compose services resolve by DNS on podman's CNI networks only with this
      # plugin (a Recommends of podman, so --no-install-recommends leaves it out)
      [[ -x /usr/lib/cni/dnsname ]] || want+=(golang-github-containernetworking-plugin-dnsname)
      ;;
  esac
done
[[ ${#want[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install: ${want[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing from Debian's packages: ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# Debian starts a cluster on 5432 when it installs postgresql; the tests start their own.
if [[ " ${want[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null 2>&1; then
  $sudo pg_ctlcluster --force "$(ls /usr/lib/postgresql | sort -V | tail -1)" main stop 2>/dev/null || true
fi
