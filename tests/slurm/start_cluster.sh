#!/usr/bin/env bash
# Start a throwaway single-node Slurm cluster for vaelab's SLURM tests (tests/test_slurm.py)
# (Debian 12: Slurm 22.05, munge; with ACCOUNTING=1 also MariaDB + slurmdbd so that sacct
# works, which submitit polls). Needs root; .ci/run starts it before the tests and stops it
# after. The team's ../shared/slurm/start_cluster.sh, kept here so a clone has its own.
#
#   sudo bash tests/slurm/start_cluster.sh [DIR]  # DIR defaults to /tmp/slurm-cluster (must not be in use)
#   ACCOUNTING=0 bash tests/slurm/start_cluster.sh # no MariaDB/slurmdbd: sacct then says "accounting storage is disabled"
#   source DIR/env.sh                # SLURM_CONF=DIR/slurm.conf for sinfo/srun/sbatch/...
#   bash DIR/stop.sh                 # cancels the jobs, kills exactly the daemons started here (by PID)
#
# Every file lives under DIR; nothing under /etc or /var is written (apt-get aside).
# Ports: slurmctld 6817, slurmd 6818, slurmdbd 6819, MariaDB 3307, all on 127.0.0.1.
set -euo pipefail

DIR=$(realpath -m "${1:-/tmp/slurm-cluster}")
ACCOUNTING=${ACCOUNTING:-1}
CLUSTER=${CLUSTER:-testcluster}
PARTITION=${PARTITION:-debug}
t_start=$(date +%s)

if [ -e "$DIR/pids" ]; then
    echo "start_cluster: $DIR/pids exists: a cluster may be running; run $DIR/stop.sh or pick another DIR" >&2
    exit 1
fi
for port in 6817 6818 6819 3307; do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
        echo "start_cluster: port $port on 127.0.0.1 is already in use" >&2
        exit 1
    fi
done

# --- packages (Debian 12 bookworm: slurm-wlm 22.05.8, munge 0.5.15, mariadb 10.11) ----
pkgs=(slurmctld slurmd slurm-client munge)
[ "$ACCOUNTING" = 1 ] && pkgs+=(slurmdbd mariadb-server-core mariadb-client-core)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "start_cluster: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    }
fi

# munged refuses a socket below a folder that others cannot traverse (mktemp -d makes 0700 ones)
p=$(dirname "$DIR")
while [ "$p" != "/" ]; do
    if [ -d "$p" ] && [ "$(( 0$(stat -c %a "$p") & 01 ))" -eq 0 ]; then
        echo "start_cluster: munge needs every parent of $DIR to be world-executable; $p is not (chmod o+x $p, or pick another DIR)" >&2
        exit 1
    fi
    p=$(dirname "$p")
done
mkdir -p "$DIR"/{munge,state/ctld,state/d,log,run}
chmod 755 "$DIR" "$DIR/munge"
: > "$DIR/pids"
export SLURM_CONF="$DIR/slurm.conf"

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local n=$(( $1 * 4 )) what=$2; shift 2
    for _ in $(seq "$n"); do timeout 5 "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    echo "start_cluster: $what did not come up; logs in $DIR/log" >&2
    exit 1
}

# --- munge: own key, socket and pid under DIR -------------------------------------------
mungekey --create --keyfile="$DIR/munge/munge.key" --force
chmod 600 "$DIR/munge/munge.key"
munged --socket="$DIR/munge/munge.socket.2" --key-file="$DIR/munge/munge.key" \
    --log-file="$DIR/log/munged.log" --pid-file="$DIR/run/munged.pid" \
    --seed-file="$DIR/munge/munged.seed"
wait_for 10 munged test -s "$DIR/run/munged.pid"
echo "munged $(cat "$DIR/run/munged.pid")" >> "$DIR/pids"

# --- node description from the machine itself ----------------------------------------
NODE=$(hostname -s)
NODELINE=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')   # CPUs=.. Boards=.. ... RealMemory=..

ACCT_CONF="AccountingStorageType=accounting_storage/none"
if [ "$ACCOUNTING" = 1 ]; then
    # --- MariaDB on 127.0.0.1:3307, root with no password (loopback only, throwaway) ---
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root \
        --auth-root-authentication-method=normal --skip-test-db > "$DIR/log/mariadb-install.log" 2>&1
    setsid mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DIR/run/mysqld.sock" \
        --port=3307 --bind-address=127.0.0.1 --user=root --pid-file="$DIR/run/mysqld.pid" \
        --log-error="$DIR/log/mysqld.err" --skip-log-bin --innodb-buffer-pool-size=64M \
        --innodb-log-file-size=16M </dev/null >/dev/null 2>&1 &
    echo "mariadbd $!" >> "$DIR/pids"
    wait_for 60 mariadbd mariadb --no-defaults -h127.0.0.1 -P3307 -uroot -e 'select 1'

    cat > "$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket.2
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/slurmdbd.conf"
    ACCT_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
# with auth/munge this names the munge socket for slurmdbd connections (default /run/munge/...)
AccountingStoragePass=$DIR/munge/munge.socket.2"
fi

# --- slurm.conf (slurmdbd reads slurmdbd.conf from the same folder) -------------------
cat > "$DIR/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits cred_expire+1 s before it may start again (default 120)
AuthInfo=socket=$DIR/munge/munge.socket.2,cred_expire=10
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups (container/VM): process tracking through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# reject impossible requests (too many CPUs, too much memory) at sbatch time instead of pending forever
EnforcePartLimits=ALL
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
$ACCT_CONF
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
ReturnToService=2
SchedulerType=sched/backfill
# backfill every 2 s (default 30): a requeued job starts ~12 s after the requeue, not up to 40 s
SchedulerParameters=bf_interval=2
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 $NODELINE State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

if [ "$ACCOUNTING" = 1 ]; then
    slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
    echo "slurmdbd $(cat "$DIR/run/slurmdbd.pid")" >> "$DIR/pids"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

slurmctld -c                     # -c: start from an empty state
wait_for 30 slurmctld scontrol ping
echo "slurmctld $(cat "$DIR/run/slurmctld.pid")" >> "$DIR/pids"
slurmd
wait_for 30 slurmd test -s "$DIR/run/slurmd.pid"
echo "slurmd $(cat "$DIR/run/slurmd.pid")" >> "$DIR/pids"
wait_for 60 "node $NODE" bash -c "sinfo -h -n $NODE -o %T | grep -qx idle"

cat > "$DIR/env.sh" <<EOF
export SLURM_CONF=$DIR/slurm.conf
EOF
cat > "$DIR/stop.sh" <<EOF
#!/usr/bin/env bash
# Stops the cluster started in $DIR: cancels its jobs, then kills the recorded PIDs.
export SLURM_CONF=$DIR/slurm.conf
scancel --user=\$(id -un) 2>/dev/null || true
for _ in \$(seq 60); do [ -z "\$(squeue -h 2>/dev/null)" ] && break; sleep 0.25; done
tac "$DIR/pids" | while read -r name pid; do
    if kill -0 "\$pid" 2>/dev/null; then
        kill "\$pid"
        for _ in \$(seq 40); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "\$pid" 2>/dev/null && { echo "\$name (\$pid) still running: kill -9 \$pid"; kill -9 "\$pid"; }
        echo "stopped \$name (\$pid)"
    fi
done
rm -f "$DIR/pids"
EOF
chmod +x "$DIR/stop.sh"

echo "cluster $CLUSTER up in $(( $(date +%s) - t_start ))s; daemons (name pid):"
sed 's/^/  /' "$DIR/pids"
echo "partition: $PARTITION (node $NODE: $NODELINE)"
echo "use:  source $DIR/env.sh    stop:  bash $DIR/stop.sh"
echo "PARTITION=$PARTITION"
