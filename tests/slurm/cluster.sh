#!/usr/bin/env bash
# A one-node SLURM cluster for the tests (Debian's slurm-wlm packages, run as root, no systemd).
#   cluster.sh start STATE_DIR   install if needed, write the configuration, start munged, slurmctld, slurmd
#   cluster.sh stop STATE_DIR    stop the daemons started by `start` (by PID)
# The node has partitions "cpu" (default) and "gpu" (the profile's), "short" and "gpu-a100" (the README's
# override command's) and one fake GPU (gres gpu:1 on /dev/null).
# slurm.conf must live at /etc/slurm/slurm.conf: the executor plugin's job steps drop SLURM_CONF.
set -euo pipefail
cmd=${1:?start|stop}
state=${2:?state directory}
mkdir -p "$state"
state=$(cd "$state" && pwd)

stop() {
    for name in slurmd slurmctld munged; do
        if [ -f "$state/$name.pid" ]; then
            kill "$(cat "$state/$name.pid")" 2>/dev/null || true
            rm -f "$state/$name.pid"
        fi
    done
}

if [ "$cmd" = stop ]; then stop; exit 0; fi

if [ "$(id -u)" != 0 ]; then echo "cluster.sh: needs root (apt-get, daemons)" >&2; exit 3; fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm "$state/spool/ctld" "$state/spool/d" "$state/log" "$state/munge"
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=discaflow-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=600
DefMemPerCPU=1000
SchedulerType=sched/backfill
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
PartitionName=short Nodes=$host MaxTime=INFINITE State=UP
PartitionName=gpu-a100 Nodes=$host MaxTime=INFINITE State=UP
CONF
echo "Name=gpu File=/dev/null" > /etc/slurm/gres.conf

stop
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
munged --force --pid-file="$state/munged.pid" 2>/dev/null || munged --force
slurmctld
slurmd
for _ in $(seq 50); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)'; then
        sinfo
        exit 0
    fi
    sleep 0.2
done
echo "cluster.sh: the node did not become idle; see $state/log" >&2
sinfo >&2 || true
exit 4
