#!/usr/bin/env bash
# Submit the sharded ranking as four Slurm jobs chained with --dependency=afterok:
#   known filter (array 0…n−1) → merge known → activations (array 0…n−1) → merge + rank
# Prints one line per job (stage and job id); the last line is the id of the merge + rank job.
#
#   deploy/slurm/submit.sh --model DIR --data DIR --shards N --work DIR
#       [--partition NAME] [--relations a,b] [--gpus-per-shard G] [--sbatch-args "…"]
#       [--known-args "…"] [--collect-args "…"]
# or, for an experiment's jobs (a file from pipeline.writeJobs), an array of `rsn evaluate`
# and a merge into WORK/job-results (printed as "evaluate ID" and "merge-jobs ID"):
#   deploy/slurm/submit.sh --model DIR --jobs FILE --shards N --work DIR [--partition …] […]
#
# --model is a converted model (rsn convert); --work a directory on a file system every node
# sees (the shards, merged stores and the ranking go there, logs under logs/).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lab="$(cd "$here/../.." && pwd)"
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
model="" data="" jobs="" shards="" work="" partition="" relations="" gpus="" extra="" known_args="" collect_args=""
while (($#)); do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --shards) shards="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --partition) partition="$2"; shift 2 ;;
    --relations) relations="$2"; shift 2 ;;
    --gpus-per-shard) gpus="$2"; shift 2 ;;
    --sbatch-args) extra="$2"; shift 2 ;;
    --known-args) known_args="$2"; shift 2 ;;
    --collect-args) collect_args="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "submit.sh: unknown argument \"$1\"" >&2; usage ;;
  esac
done
[[ -n "$model" && ( -n "$data" || -n "$jobs" ) && -n "$shards" && -n "$work" ]] || { echo "submit.sh: --model, --data (or --jobs), --shards and --work are required" >&2; usage; }
[[ -z "$jobs" || -z "$data" ]] || { echo "submit.sh: give --data (the ranking) or --jobs (an experiment's jobs), not both" >&2; exit 2; }
[[ -z "$jobs" || -f "$jobs" ]] || { echo "submit.sh: --jobs $jobs is not a file (write it with pipeline.writeJobs)" >&2; exit 2; }
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: --shards must be a positive integer, got \"$shards\"" >&2; exit 2; }
[[ -f "$model/model.json" ]] || { echo "submit.sh: --model $model has no model.json; convert it first (rsn convert)" >&2; exit 2; }
[[ -n "$jobs" || -d "$data" ]] || { echo "submit.sh: --data $data is not a directory" >&2; exit 2; }
if [[ -n "$gpus" ]]; then
  [[ "$gpus" =~ ^[0-9]+$ ]] || { echo "submit.sh: --gpus-per-shard must be a whole number, got \"$gpus\"" >&2; exit 2; }
  # sbatch's own answer on GPU-less nodes is "Invalid generic resource (gres) specification".
  gres="$(sinfo -h ${partition:+--partition="$partition"} -o '%G' 2>/dev/null | sort -u | tr '\n' ' ')"
  [[ "$gpus" == 0 || "$gres" == *gpu* ]] || { echo "submit.sh: --gpus-per-shard $gpus, but no node${partition:+ of partition $partition} offers GPUs (sinfo's generic resources: ${gres:-none}); leave --gpus-per-shard out on CPU nodes" >&2; exit 2; }
  ((gpus > 0)) || gpus=""
fi
mkdir -p "$work/logs"
export RSN_JOB_LAB="$lab" RSN_JOB_MODEL="$(realpath "$model")" RSN_JOB_WORK="$(realpath "$work")"
[[ -n "$data" ]] && export RSN_JOB_DATA="$(realpath "$data")"
[[ -n "$jobs" ]] && export RSN_JOB_JOBS="$(realpath "$jobs")"
export RSN_JOB_SHARDS="$shards" RSN_JOB_RELATIONS="$relations" RSN_JOB_KNOWN_ARGS="$known_args" RSN_JOB_COLLECT_ARGS="$collect_args"
common=(--parsable --chdir="$RSN_JOB_WORK" --export=ALL)
[[ -n "$partition" ]] && common+=(--partition="$partition")
# shellcheck disable=SC2206 # --sbatch-args is a list of options
[[ -n "$extra" ]] && common+=($extra)
array=(--array="0-$((shards - 1))" --output="$RSN_JOB_WORK/logs/%x-%A_%a.out")
[[ -n "$gpus" ]] && array+=(--gres="gpu:$gpus")
single=(--output="$RSN_JOB_WORK/logs/%x-%j.out")
jid() { sbatch "$@" | cut -d';' -f1; }
if [[ -n "$jobs" ]]; then
  evaluate=$(jid "${common[@]}" "${array[@]}" --job-name=rsn-evaluate "$here/shard.sbatch" evaluate)
  echo "evaluate $evaluate"
  merge_jobs=$(jid "${common[@]}" "${single[@]}" --job-name=rsn-merge-jobs --dependency="afterok:$evaluate" --kill-on-invalid-dep=yes "$here/merge.sbatch" jobs)
  echo "merge-jobs $merge_jobs"
  exit 0
fi
known=$(jid "${common[@]}" "${array[@]}" --job-name=rsn-known "$here/shard.sbatch" known)
echo "known $known"
merge_known=$(jid "${common[@]}" "${single[@]}" --job-name=rsn-merge-known --dependency="afterok:$known" --kill-on-invalid-dep=yes "$here/merge.sbatch" known)
echo "merge-known $merge_known"
collect=$(jid "${common[@]}" "${array[@]}" --job-name=rsn-collect --dependency="afterok:$merge_known" --kill-on-invalid-dep=yes "$here/shard.sbatch" collect)
echo "collect $collect"
rank=$(jid "${common[@]}" "${single[@]}" --job-name=rsn-rank --dependency="afterok:$collect" --kill-on-invalid-dep=yes "$here/merge.sbatch" rank)
echo "rank $rank"
