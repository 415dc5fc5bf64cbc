#!/usr/bin/env bash
# A single-node Slurm on this Debian machine, to try deploy/slurm/ without a cluster (the tests
# use it too). Debian's munge and slurm-wlm are installed with apt-get when missing; munged,
# slurmctld and slurmd run as root from a folder of their own (configuration, state, logs) on
# free ports, so /etc is not touched and a real Slurm on the machine is not disturbed.
#
#   deploy/slurm/local-cluster.sh up   [--dir DIR] [--partition NAME]
#   deploy/slurm/local-cluster.sh down [--dir DIR]
#
# `up` waits until the node is idle and prints the line to use it: export SLURM_CONF=DIR/slurm.conf
# (submit.sh and sbatch/squeue then talk to this cluster). `down` cancels its jobs, stops the
# daemons and removes DIR. Default DIR: ${TMPDIR:-/tmp}/rsn-local-slurm; partition: rsn.
set -euo pipefail
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
cmd="${1:-}"
[[ "$cmd" == up || "$cmd" == down ]] || usage
shift
dir="${TMPDIR:-/tmp}/rsn-local-slurm" partition="rsn"
while (($#)); do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --partition) partition="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "local-cluster.sh: unknown argument \"$1\"" >&2; usage ;;
  esac
done

stop() {
  [[ -f "$dir/slurm.conf" ]] && SLURM_CONF="$dir/slurm.conf" scancel --partition="$partition" 2>/dev/null || true
  for f in slurmd.pid slurmctld.pid munged.pid; do
    [[ -f "$dir/$f" ]] && kill "$(cat "$dir/$f")" 2>/dev/null || true
  done
  sleep 1
}

if [[ "$cmd" == down ]]; then
  [[ -d "$dir" ]] || { echo "local-cluster.sh: no cluster in $dir" >&2; exit 0; }
  stop
  rm -rf "$dir"
  echo "stopped and removed $dir"
  exit 0
fi

[[ "$(id -u)" == 0 ]] || { echo "local-cluster.sh: the daemons (munged, slurmctld, slurmd) need root" >&2; exit 1; }
[[ -e "$dir" ]] && { echo "local-cluster.sh: $dir exists (a cluster already up?); run \"$0 down --dir $dir\" first" >&2; exit 1; }
tools=(/usr/sbin/munged /usr/sbin/mungekey /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/squeue /usr/bin/sinfo /usr/bin/scancel)
missing=0
for t in "${tools[@]}"; do [[ -x "$t" ]] || missing=1; done
if ((missing)); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null; }
fi
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
mkdir -p "$dir"/{state,spool,log}
chmod 700 "$dir"
node_name="$(hostname | cut -d. -f1)"
ctld_port="$(free_port)" slurmd_port="$(free_port)"
/usr/sbin/mungekey --create --keyfile="$dir/munge.key" >/dev/null
chmod 600 "$dir/munge.key"
/usr/sbin/munged --force --socket="$dir/munge.sock" --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed"
cat > "$dir/slurm.conf" <<EOF
ClusterName=rsnlocal
SlurmctldHost=$node_name
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
NodeName=$node_name CPUs=$(nproc) State=UNKNOWN
PartitionName=$partition Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"
for ((i = 0; ; i++)); do
  state="$(sinfo -h -o %T 2>/dev/null || true)"
  [[ "$state" == idle ]] && break
  if ((i > 60)); then
    echo "local-cluster.sh: the node did not become idle (sinfo: \"$state\"); logs in $dir/log" >&2
    stop
    exit 1
  fi
  sleep 0.5
done
echo "export SLURM_CONF=$SLURM_CONF"
