#!/usr/bin/env bash
# Apply the rendered manifests (render.ts --out DIR) in order, waiting for each Job to complete
# before the next starts: Kubernetes has no dependencies between Jobs. Stops at the first Job
# that fails, printing its pods' logs. Re-running it after a failure is safe: finished shards
# do nothing and an interrupted shard resumes from its directory on the work volume (delete the
# failed Job first: kubectl delete job NAME).
#
#   deploy/k8s/run.sh DIR [--namespace NS] [--timeout SECONDS per Job, default 86400]
set -euo pipefail
dir="${1:?usage: run.sh DIR [--namespace NS] [--timeout SECONDS]}"; shift
ns=() timeout=86400
while (($#)); do
  case "$1" in
    --namespace) ns=(--namespace "$2"); shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument \"$1\"" >&2; exit 2 ;;
  esac
done
wait_job() {
  local name="$1" start=$SECONDS state
  while :; do
    state=$(kubectl "${ns[@]}" get job "$name" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
    case " $state " in
      *" Complete "*) echo "job $name complete"; return 0 ;;
      *" Failed "*) echo "job $name failed" >&2; kubectl "${ns[@]}" logs -l "rsn-lab/stage=$name" --all-containers --tail=50 >&2 || true; return 1 ;;
    esac
    if ((SECONDS - start > timeout)); then echo "job $name: not done after $timeout s" >&2; return 1; fi
    sleep 10
  done
}
for f in "$dir"/*.json; do
  kubectl "${ns[@]}" apply -f "$f"
  name=$(kubectl "${ns[@]}" get -f "$f" -o jsonpath='{.kind}/{.metadata.name}')
  [[ "$name" == Job/* ]] && wait_job "${name#Job/}"
done
if compgen -G "$dir/*merge-jobs.json" >/dev/null; then echo "results written to the work volume: /work/job-results"
else echo "ranking written to the work volume: /work/ranking"; fi
