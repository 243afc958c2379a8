"""A fake Slurm for a single machine: the logic behind the `sbatch`, `squeue`, `sacct`, `scancel`, `sinfo`,
`srun`, `scontrol`, `sacctmgr` and `sshare` scripts of this folder (standard library only).

Put this folder first on PATH. Each submitted job runs as a local background process (its own session and
process group), watched by a small supervisor process that records its end state. State lives in the folder
named by FAKE_SLURM_DIR (default: <tmp>/fake_slurm-<uid>): jobs/<id>.json per job, logs/, scripts/, steps/.

Environment knobs:
  FAKE_SLURM_DIR          state folder (created if missing)
  FAKE_SLURM_TIME_SCALE   seconds per requested minute of -t/--time; unset: wall times are not enforced
  FAKE_SLURM_KILL_GRACE   seconds between SIGTERM and SIGKILL at the time limit or on scancel (default 2)
  FAKE_SLURM_PARTITIONS   comma list of partitions, the first (or one marked *) the default; unset: "main",
                          and sbatch accepts any partition
  FAKE_SLURM_ACCOUNTS     comma list of the user's accounts (sacctmgr/sshare); unset: sacctmgr/sshare print
                          nothing (the plugin then skips validation) and sbatch accepts any account
  FAKE_SLURM_CLUSTER      cluster name (default "fakecluster")
  FAKE_SLURM_MIN_JOB_AGE  MinJobAge in seconds for `scontrol show config` and squeue (default 300)
  FAKE_SLURM_CPUS, FAKE_SLURM_GPUS  node size; when set, sbatch rejects larger requests
"""

import contextlib
import fcntl
import json
import os
import re
import signal
import sys
import time

LIB = os.path.realpath(__file__)
TOKEN_VAR = "FAKE_SLURM_JOB_TOKEN"
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")
STATE_CODES = {
    "PENDING": "PD",
    "RUNNING": "R",
    "COMPLETED": "CD",
    "FAILED": "F",
    "CANCELLED": "CA",
    "TIMEOUT": "TO",
    "OUT_OF_MEMORY": "OOM",
    "NODE_FAIL": "NF",
    "COMPLETING": "CG",
    "SUSPENDED": "S",
    "PREEMPTED": "PR",
}
REASONS = {"COMPLETED": "None", "FAILED": "NonZeroExitCode", "CANCELLED": "None", "TIMEOUT": "TimeLimit"}


class SlurmError(Exception):
    """An error a Slurm command prints (as `<prog>: error: <msg>`) before exiting 1."""


# ------------------------------------------------------------------------------------------ state folder


def state_dir() -> str:
    d = os.environ.get("FAKE_SLURM_DIR") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), f"fake_slurm-{os.getuid()}"
    )
    d = os.path.abspath(d)
    for sub in ("jobs", "logs", "scripts", "steps"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    return d


class Lock:
    """An exclusive flock on <state>/lock: id allocation and read-modify-write of records."""

    def __init__(self, sdir):
        self.path = os.path.join(sdir, "lock")

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def record_path(sdir, key):
    return os.path.join(sdir, "jobs", f"{key}.json")


def load_record(sdir, key):
    try:
        with open(record_path(sdir, key)) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def save_record(sdir, rec):
    path = record_path(sdir, rec["job_id"])
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _key_order(key):
    base, _, task = key.partition("_")
    return (int(base) if base.isdigit() else 0, int(task) if task.isdigit() else -1)


def all_records(sdir):
    keys = [n[:-5] for n in os.listdir(os.path.join(sdir, "jobs")) if n.endswith(".json")]
    recs = []
    for key in sorted(keys, key=_key_order):
        rec = load_record(sdir, key)
        if rec is not None:
            recs.append(rec)
    return recs


def allocate_ids(sdir, count):
    """The first of `count` consecutive new job ids (from 1000 on); call with the lock held."""
    path = os.path.join(sdir, "next_job_id")
    try:
        with open(path) as f:
            first = int(f.read().strip() or 1000)
    except FileNotFoundError:
        first = 1000
    with open(path + ".tmp", "w") as f:
        f.write(str(first + count))
    os.replace(path + ".tmp", path)
    return first


# --------------------------------------------------------------------------------------- configuration


def username():
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER", str(os.getuid()))


def hostname():
    import socket

    return socket.gethostname().split(".")[0] or "localhost"


def cluster_name():
    return os.environ.get("FAKE_SLURM_CLUSTER", "fakecluster")


def partitions():
    """[(name, is_default)]; the configured list, or [("main", True)]."""
    raw = [p.strip() for p in os.environ.get("FAKE_SLURM_PARTITIONS", "").split(",") if p.strip()]
    if not raw:
        return [("main", True)]
    marked = any(p.endswith("*") for p in raw)
    return [(p.rstrip("*"), p.endswith("*") if marked else i == 0) for i, p in enumerate(raw)]


def accounts():
    return [a.strip() for a in os.environ.get("FAKE_SLURM_ACCOUNTS", "").split(",") if a.strip()]


def node_cpus():
    return int(os.environ.get("FAKE_SLURM_CPUS") or os.cpu_count() or 1)


def node_gpus():
    return int(os.environ.get("FAKE_SLURM_GPUS") or 0)


def node_mem_mb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096


def min_job_age():
    return int(os.environ.get("FAKE_SLURM_MIN_JOB_AGE", "300"))


# ------------------------------------------------------------------------------------- value formatting


def parse_time_minutes(value):
    """Slurm's --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes,
    days-hours:minutes:seconds; None for UNLIMITED/infinite. Raises ValueError."""
    v = str(value).strip()
    if v.lower() in ("unlimited", "infinite", "-1"):
        return None
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", v)
    if not m:
        raise ValueError(v)
    days, a, b, c = m.groups()
    if days is not None:  # days-hours[:minutes[:seconds]]
        return int(days) * 1440 + int(a) * 60 + int(b or 0) + int(c or 0) / 60
    if c is not None:  # hours:minutes:seconds
        return int(a) * 60 + int(b) + int(c) / 60
    if b is not None:  # minutes:seconds
        return int(a) + int(b) / 60
    return float(a)


def parse_mem_mb(value):
    """--mem/--mem-per-cpu: a number with an optional K/M/G/T unit (default M)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGTkmgt]?)[Bb]?", str(value).strip())
    if not m:
        raise ValueError(value)
    factor = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "": 1}[m.group(2).upper()]
    return int(round(float(m.group(1)) * factor))


def fmt_duration(seconds):
    """[D-]HH:MM:SS (sacct, scontrol)."""
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}" if d else f"{h:02d}:{m:02d}:{s:02d}"


def fmt_squeue_duration(seconds):
    """squeue's M:SS, H:MM:SS or D-HH:MM:SS."""
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}-{h:02d}:{m:02d}:{s:02d}"
    if h:
        return f"{h}:{m:02d}:{s:02d}"
    return f"{m}:{s:02d}"


def fmt_cpu_time(seconds):
    """sacct's TotalCPU: MM:SS.mmm below an hour, else [D-]HH:MM:SS."""
    if seconds < 3600:
        m, s = divmod(seconds, 60)
        return f"{int(m):02d}:{s:06.3f}"
    return fmt_duration(seconds)


def fmt_limit(minutes):
    return "UNLIMITED" if minutes is None else fmt_duration(minutes * 60)


def fmt_ts(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts)) if ts else "Unknown"


def fmt_cell(value, width, left, truncate_mark=""):
    value = str(value)
    if width is None:
        return value
    if width and len(value) > width:
        value = value[: width - len(truncate_mark)] + truncate_mark if truncate_mark else value[:width]
    return value.ljust(width) if left else value.rjust(width)


def expand_pattern(pattern, rec):
    """%j %A %a %x %u %N %n %s %t %% of --output/--error/--chdir."""
    repl = {
        "j": str(rec["raw_id"]),
        "A": str(rec.get("array_job_id") or rec["raw_id"]),
        "a": str(rec.get("array_task_id") if rec.get("array_task_id") is not None else "4294967294"),
        "x": rec["name"],
        "u": rec["user"],
        "N": hostname(),
        "n": "0",
        "s": "batch",
        "t": "0",
        "%": "%",
    }

    def sub(m):
        code = m.group(2)
        val = repl.get(code)
        if val is None:
            return m.group(0)
        pad = m.group(1)
        return val.zfill(int(pad)) if pad and val.isdigit() else val

    return re.sub(r"%(\d*)([jAaxuNnst%])", sub, pattern)


def job_cpus(rec):
    return max(1, int(rec.get("cpus_per_task") or 1)) * max(1, int(rec.get("ntasks") or 1))


def job_tres(rec):
    parts = [f"billing={job_cpus(rec)}", f"cpu={job_cpus(rec)}"]
    if rec.get("gpus"):
        parts.append("gres/gpu={}".format(str(rec["gpus"]).split(":")[-1]))
    if rec.get("mem_mb"):
        parts.append(f"mem={rec['mem_mb']}M")
    parts.append("node=1")
    return ",".join(parts)


def req_mem(rec):
    if rec.get("mem_per_cpu_mb"):
        return f"{rec['mem_per_cpu_mb']}Mc"
    if rec.get("mem_mb"):
        return f"{rec['mem_mb']}M"
    return ""


def elapsed(rec, now=None):
    start = rec.get("start_time")
    if not start:
        return 0
    return (rec.get("end_time") or now or time.time()) - start


def exit_code_str(rec):
    return f"{rec.get('exit_code') or 0}:{rec.get('exit_signal') or 0}"


# ---------------------------------------------------------------------------------------- option parsing


# name -> (canonical long name, kind): kind 0 = flag, 1 = required argument, 2 = optional argument (=value)
def _spec(longs_with_arg, longs_flag, longs_opt, shorts_with_arg, shorts_flag):
    spec = {}
    for n in longs_with_arg.split():
        spec["--" + n] = (n, 1)
    for n in longs_flag.split():
        spec["--" + n] = (n, 0)
    for n in longs_opt.split():
        spec["--" + n] = (n, 2)
    for pair in shorts_with_arg.split():
        s, n = pair.split("=")
        spec["-" + s] = (n, 1)
    for pair in shorts_flag.split():
        s, n = pair.split("=")
        spec["-" + s] = (n, 0)
    return spec


SBATCH_SPEC = _spec(
    "account acctg-freq array batch bb bbf begin chdir cluster-constraint clusters comment constraint "
    "container container-id core-spec cores-per-socket cpu-freq cpus-per-gpu cpus-per-task deadline "
    "delay-boot dependency distribution error export export-file extra extra-node-info gid gpu-bind "
    "gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres gres-flags hint input job-name "
    "licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu mincpus network nodefile "
    "nodelist nodes ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket open-mode "
    "output partition power prefer priority profile qos reservation signal sockets-per-node switches "
    "thread-spec threads-per-core time time-min tmp tres-bind tres-per-task uid wckey wrap workdir exclude "
    "resv-ports segment",
    "contiguous help hold ignore-pbs no-kill no-requeue overcommit oversubscribe parsable quiet reboot "
    "requeue spread-job test-only usage use-min-nodes verbose version wait exact",
    "exclusive get-user-env kill-on-invalid-dep mem-per-node nice propagate",
    "A=account a=array B=extra-node-info b=begin C=constraint c=cpus-per-task D=chdir d=dependency "
    "e=error F=nodefile G=gpus i=input J=job-name L=licenses M=clusters m=distribution N=nodes n=ntasks "
    "o=output p=partition q=qos S=core-spec t=time w=nodelist x=exclude",
    "H=hold h=help I=immediate k=no-kill O=overcommit Q=quiet s=oversubscribe u=usage V=version v=verbose "
    "W=wait",
)

SRUN_SPEC = _spec(
    "account acctg-freq bb bbf begin bcast chdir cluster-constraint clusters comment constraint "
    "container core-spec cores-per-socket cpu-bind cpu-freq cpus-per-gpu cpus-per-task deadline delay-boot "
    "dependency distribution epilog error export gid gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket "
    "gpus-per-task gres gres-flags het-group hint input job-name jobid kill-on-bad-exit label licenses "
    "mail-type mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu mincpus mpi network nodefile "
    "nodelist nodes ntasks ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket open-mode "
    "output partition power prefer priority profile prolog propagate qos reservation resv-ports signal "
    "slurmd-debug sockets-per-node switches task-epilog task-prolog thread-spec threads-per-core time "
    "time-min tmp tres-bind tres-per-task uid wait wckey exclude accel-bind",
    "disable-status exact help hold no-allocate no-kill overcommit overlap oversubscribe preserve-env pty "
    "quiet quit-on-interrupt reboot relative spread-job test-only unbuffered usage use-min-nodes verbose "
    "version whole",
    "exclusive kill-on-bad-exit immediate nice",
    "A=account B=extra-node-info b=begin C=constraint c=cpus-per-task D=chdir d=dependency e=error "
    "G=gpus i=input J=job-name K=kill-on-bad-exit L=licenses M=clusters m=distribution N=nodes n=ntasks "
    "o=output p=partition q=qos r=relative S=core-spec T=threads t=time W=wait w=nodelist x=exclude",
    "E=preserve-env H=hold h=help I=immediate k=no-kill l=label O=overcommit Q=quiet s=oversubscribe "
    "u=unbuffered V=version v=verbose X=disable-status Z=no-allocate",
)


def parse_options(argv, spec, prog, stop_at_positional=True, strict=True):
    """getopt_long-like parsing: returns ([(name, value)], positionals). Stops at the first positional
    (the script/command) when stop_at_positional; after `--` everything is positional."""
    opts, pos = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            pos.extend(argv[i:])
            break
        if a.startswith("--") and len(a) > 2:
            name, eq, val = a.partition("=")
            entry = spec.get(name)
            if entry is None:
                if strict:
                    raise SlurmError(f"unrecognized option '{a}'")
                opts.append((name[2:], val if eq else True))
                continue
            canon, kind = entry
            if kind == 0:
                if eq:
                    raise SlurmError(f"option '{name}' doesn't allow an argument")
                opts.append((canon, True))
            elif kind == 2:
                opts.append((canon, val if eq else True))
            else:
                if not eq:
                    if i >= len(argv):
                        raise SlurmError(f"option '{name}' requires an argument")
                    val = argv[i]
                    i += 1
                opts.append((canon, val))
        elif a.startswith("-") and len(a) > 1 and not re.fullmatch(r"-\d+", a):
            j = 1
            while j < len(a):
                entry = spec.get("-" + a[j])
                if entry is None:
                    if strict:
                        raise SlurmError(f"invalid option -- '{a[j]}'")
                    j += 1
                    continue
                canon, kind = entry
                if kind == 0:
                    opts.append((canon, True))
                    j += 1
                    continue
                val = a[j + 1 :]
                if not val:
                    if i >= len(argv):
                        raise SlurmError(f"option requires an argument -- '{a[j]}'")
                    val = argv[i]
                    i += 1
                opts.append((canon, val))
                break
        else:
            pos.append(a)
            if stop_at_positional:
                pos.extend(argv[i:])
                break
    return opts, pos


# --------------------------------------------------------------------------------------- process control


def _token_pids(token):
    """Pids of processes whose environment carries this job's token (the job's 'cgroup')."""
    needle = f"{TOKEN_VAR}={token}\0".encode()
    me = os.getpid()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if needle in data:
            pids.append(int(name))
    return pids


def signal_job(rec, sig, batch_only=False):
    """Send sig to the job's process group and all processes carrying its token (or the batch shell only)."""
    pid = rec.get("pid")
    if not pid:
        return
    targets = []
    if batch_only:
        targets = [pid]
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec.get("pgid") or pid, sig)
        if rec.get("token"):
            targets = _token_pids(rec["token"])
    for p in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def signal_number(name):
    name = str(name).upper().strip()
    if name.isdigit():
        return int(name)
    if not name.startswith("SIG"):
        name = "SIG" + name
    return int(getattr(signal, name))


# ------------------------------------------------------------------------------------------------ sbatch


def _script_directives(text):
    """#SBATCH arguments at the top of a batch script (until the first command)."""
    import shlex

    args = []
    for line in text.splitlines()[1:]:
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            break
        if s.startswith("#SBATCH"):
            body = s[len("#SBATCH") :].split(" #", 1)[0]
            args.extend(shlex.split(body))
    return args


def _parse_array(spec):
    """'1-3', '1,3,5', '0-15:4', '1-100%5' -> sorted task ids."""
    spec = spec.split("%", 1)[0]
    ids = set()
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not m:
            raise SlurmError(f"Invalid job array specification: {spec}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        step = int(m.group(3) or 1)
        ids.update(range(lo, hi + 1, step))
    if not ids:
        raise SlurmError(f"Invalid job array specification: {spec}")
    return sorted(ids)


def _job_env(rec, base_env, sdir):
    export = rec["options"].get("export", "ALL")
    items = [x for x in str(export).split(",") if x]
    if items and items[0].upper() in ("ALL", "NONE", "NIL"):
        mode, items = items[0].upper(), items[1:]
    else:
        mode = "SOME"
    if mode == "ALL":
        env = dict(base_env)
    else:
        env = {k: base_env[k] for k in ("HOME", "USER", "LOGNAME", "SHELL") if k in base_env}
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    for item in items:
        k, eq, v = item.partition("=")
        if eq:
            env[k] = v
        elif k in base_env:
            env[k] = base_env[k]
    for k in list(env):  # a submission from inside a job does not pass on that job's identity
        if k.startswith("SLURM_") or k == TOKEN_VAR:
            del env[k]
    host = hostname()
    cpus = job_cpus(rec)
    env.update(
        {
            "FAKE_SLURM_DIR": sdir,
            "FAKE_SLURM_JOB_KEY": rec["job_id"],
            TOKEN_VAR: rec["token"],
            "SLURM_JOB_ID": str(rec["raw_id"]),
            "SLURM_JOBID": str(rec["raw_id"]),
            "SLURM_JOB_NAME": rec["name"],
            "SLURM_JOB_USER": rec["user"],
            "SLURM_JOB_UID": str(os.getuid()),
            "SLURM_JOB_PARTITION": rec.get("partition") or "",
            "SLURM_JOB_ACCOUNT": rec.get("account") or "",
            "SLURM_JOB_QOS": rec.get("qos") or "normal",
            "SLURM_CLUSTER_NAME": cluster_name(),
            "SLURM_SUBMIT_DIR": rec["submit_dir"],
            "SLURM_SUBMIT_HOST": host,
            "SLURM_JOB_NODELIST": host,
            "SLURM_NODELIST": host,
            "SLURMD_NODENAME": host,
            "SLURM_NNODES": "1",
            "SLURM_JOB_NUM_NODES": "1",
            "SLURM_NODEID": "0",
            "SLURM_PROCID": "0",
            "SLURM_LOCALID": "0",
            "SLURM_CPUS_ON_NODE": str(cpus),
            "SLURM_JOB_CPUS_PER_NODE": str(cpus),
            "SLURM_NTASKS": str(rec.get("ntasks") or 1),
            "SLURM_NPROCS": str(rec.get("ntasks") or 1),
            "SLURM_TASKS_PER_NODE": str(rec.get("ntasks") or 1),
            "SLURM_GTIDS": "0",
            "SLURM_CONF": os.path.join(sdir, "slurm.conf"),
            "ENVIRONMENT": "BATCH",
        }
    )
    if rec.get("cpus_per_task"):
        env["SLURM_CPUS_PER_TASK"] = str(rec["cpus_per_task"])
    if rec.get("mem_mb"):
        env["SLURM_MEM_PER_NODE"] = str(rec["mem_mb"])
    if rec.get("mem_per_cpu_mb"):
        env["SLURM_MEM_PER_CPU"] = str(rec["mem_per_cpu_mb"])
    if rec.get("gpus"):
        env["SLURM_GPUS"] = str(rec["gpus"])
        env["SLURM_GPUS_ON_NODE"] = str(rec["gpus"]).split(":")[-1]
    if rec.get("time_limit_minutes") is not None:
        env["SLURM_TIMELIMIT"] = str(int(rec["time_limit_minutes"]))
    if rec.get("array_job_id") is not None:
        env.update(
            {
                "SLURM_ARRAY_JOB_ID": str(rec["array_job_id"]),
                "SLURM_ARRAY_TASK_ID": str(rec["array_task_id"]),
                "SLURM_ARRAY_TASK_MIN": str(rec["array_task_min"]),
                "SLURM_ARRAY_TASK_MAX": str(rec["array_task_max"]),
                "SLURM_ARRAY_TASK_COUNT": str(rec["array_task_count"]),
                "SLURM_ARRAY_TASK_STEP": str(rec.get("array_task_step") or 1),
            }
        )
    return env


def sbatch(argv):
    sdir = state_dir()
    opts, pos = parse_options(argv, SBATCH_SPEC, "sbatch")
    cmd_opts = dict(opts)
    if cmd_opts.get("help") or cmd_opts.get("usage"):
        print("Usage: sbatch [OPTIONS(0)...] [ : [OPTIONS(N)...]] script(0) [args(0)...]")
        return 0
    if cmd_opts.get("version"):
        print("slurm 23.02.0 (fake)")
        return 0
    wrap = cmd_opts.get("wrap")
    script_text, script_args, script_path = None, [], None
    if wrap is not None:
        if pos:
            raise SlurmError("script arguments not permitted with --wrap option")
        script_text = "#!/bin/sh\n# This script was created by sbatch --wrap.\n\n" + wrap + "\n"
    else:
        if pos:
            script_path, script_args = pos[0], pos[1:]
            try:
                with open(script_path) as f:
                    script_text = f.read()
            except OSError as e:
                raise SlurmError(f"Unable to open file {script_path}: {e.strerror}") from None
        else:
            script_text = sys.stdin.read()
        if not script_text.startswith("#!"):
            raise SlurmError(
                "This does not look like a batch script.  The first\n"
                "sbatch: error: line must start with #! followed by the path to an interpreter.\n"
                "sbatch: error: For instance: #!/bin/sh"
            )
    # #SBATCH directives first, the command line overrides them
    dir_opts, _ = parse_options(
        _script_directives(script_text), SBATCH_SPEC, "sbatch", stop_at_positional=False
    )
    options = {}
    for k, v in dir_opts + opts:
        options[k] = v
    submit_dir = os.getcwd()
    workdir = options.get("chdir") or options.get("workdir") or submit_dir
    workdir = os.path.join(submit_dir, workdir)

    # --- validation and normalisation (errors as real sbatch words them)
    parts = partitions()
    part_names = [p for p, _ in parts]
    partition = options.get("partition")
    if partition:
        if os.environ.get("FAKE_SLURM_PARTITIONS") and partition not in part_names:
            raise SlurmError(
                f"invalid partition specified: {partition}\n"
                "sbatch: error: Batch job submission failed: Invalid partition name specified"
            )
    else:
        partition = next((p for p, d in parts if d), part_names[0])
    account = options.get("account") or ""
    known_accounts = accounts()
    if account and known_accounts and account.lower() not in [a.lower() for a in known_accounts]:
        raise SlurmError(
            "Batch job submission failed: Invalid account or account/partition combination specified"
        )
    if not account and known_accounts:
        account = known_accounts[0]
    time_limit = None
    if "time" in options:
        try:
            time_limit = parse_time_minutes(options["time"])
        except ValueError:
            raise SlurmError("Invalid --time specification") from None
    mem_mb = mem_per_cpu_mb = None
    try:
        if "mem" in options:
            mem_mb = parse_mem_mb(options["mem"])
        if "mem-per-cpu" in options:
            mem_per_cpu_mb = parse_mem_mb(options["mem-per-cpu"])
    except ValueError as e:
        raise SlurmError(f"Invalid memory specification: {e}") from None

    def int_opt(name):
        if name not in options:
            return None
        try:
            return int(str(options[name]).split("-")[0])
        except ValueError:
            raise SlurmError(f'Invalid numeric value "{options[name]}" for --{name}.') from None

    cpus_per_task = int_opt("cpus-per-task")
    ntasks = int_opt("ntasks")
    gpus = options.get("gpus") or options.get("gpus-per-node")
    gres = options.get("gres")
    if gres and not gpus:
        m = re.search(r"(?:^|,)gpu(?::[^,:]+)?:(\d+)", gres)
        gpus = m.group(1) if m else ("1" if re.search(r"(?:^|,)gpu(?:,|$)", gres) else None)
    if gpus is not None and not re.fullmatch(r"(?:[A-Za-z0-9_.\-]+:)?\d+", str(gpus)):
        raise SlurmError(f"Invalid --gpus specification: {gpus}")
    if os.environ.get("FAKE_SLURM_GPUS") is not None and gpus and int(str(gpus).split(":")[-1]) > node_gpus():
        raise SlurmError("Batch job submission failed: Requested node configuration is not available")
    if os.environ.get("FAKE_SLURM_CPUS") and (cpus_per_task or 1) * (ntasks or 1) > node_cpus():
        raise SlurmError("Batch job submission failed: Requested node configuration is not available")
    signal_spec = options.get("signal")
    signal_info = None
    if signal_spec:
        m = re.fullmatch(r"(?:([RB]+):)?([A-Za-z0-9]+)(?:@(\d+))?", signal_spec)
        if not m:
            raise SlurmError(f"Invalid --signal specification: {signal_spec}")
        try:
            signal_number(m.group(2))
        except AttributeError:
            raise SlurmError(f"Invalid --signal specification: {signal_spec}") from None
        signal_info = {"flags": m.group(1) or "", "signal": m.group(2), "seconds": int(m.group(3) or 60)}
    tasks = _parse_array(options["array"]) if options.get("array") else None
    scale = os.environ.get("FAKE_SLURM_TIME_SCALE")
    scale = float(scale) if scale not in (None, "") else None
    grace = float(os.environ.get("FAKE_SLURM_KILL_GRACE") or 2)

    import secrets

    default_name = "wrap" if wrap is not None else "sbatch"
    if script_path and script_path not in ("-", "/dev/stdin"):
        default_name = os.path.basename(script_path)
    with Lock(sdir):
        first = allocate_ids(sdir, len(tasks) if tasks else 1)
        script_file = os.path.join(sdir, "scripts", f"{first}.sh")
        with open(script_file, "w") as f:
            f.write(script_text)
        os.chmod(script_file, 0o755)
        base = {
            "name": options.get("job-name") or default_name,
            "user": username(),
            "argv": ["sbatch"] + list(argv),
            "options": options,
            "wrap": wrap,
            "script": script_file,
            "script_args": script_args,
            "submit_dir": submit_dir,
            "workdir": workdir,
            "partition": partition,
            "account": account,
            "qos": options.get("qos") or "normal",
            "comment": options.get("comment") or "",
            "cpus_per_task": cpus_per_task,
            "cpus_per_gpu": int_opt("cpus-per-gpu"),
            "ntasks": ntasks,
            "nodes": options.get("nodes"),
            "mem_mb": mem_mb,
            "mem_per_cpu_mb": mem_per_cpu_mb,
            "gpus": gpus,
            "gres": gres,
            "constraint": options.get("constraint"),
            "time": options.get("time"),
            "time_limit_minutes": time_limit,
            "time_scale": scale,
            "kill_grace": grace,
            "signal": signal_info,
            "cluster": options.get("clusters") or cluster_name(),
            "state": "PENDING",
            "reason": "None",
            "submit_time": time.time(),
            "start_time": None,
            "end_time": None,
            "exit_code": None,
            "exit_signal": None,
            "pid": None,
            "pgid": None,
            "supervisor_pid": None,
        }
        recs = []
        if tasks:
            for n, task in enumerate(tasks):
                rec = dict(
                    base,
                    job_id=f"{first}_{task}",
                    raw_id=first + n,
                    array_job_id=first,
                    array_task_id=task,
                    array_task_min=tasks[0],
                    array_task_max=tasks[-1],
                    array_task_count=len(tasks),
                )
                recs.append(rec)
        else:
            recs.append(dict(base, job_id=str(first), raw_id=first, array_job_id=None, array_task_id=None))
        for rec in recs:
            rec["token"] = f"{first}-{rec['job_id']}-{secrets.token_hex(6)}"
            rec["output"] = os.path.join(
                workdir,
                expand_pattern(
                    options.get("output") or ("slurm-%A_%a.out" if tasks else "slurm-%j.out"), rec
                ),
            )
            rec["error"] = (
                os.path.join(workdir, expand_pattern(options["error"], rec)) if options.get("error") else None
            )
            with open(os.path.join(sdir, "scripts", f"{rec['job_id']}.env.json"), "w") as f:
                json.dump(_job_env(rec, dict(os.environ), sdir), f)
            save_record(sdir, rec)
    import subprocess

    sup_env = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}
    sup_env["FAKE_SLURM_DIR"] = sdir
    for rec in recs:
        with open(os.path.join(sdir, "logs", f"{rec['job_id']}.supervisor.log"), "w") as log:
            subprocess.Popen(
                [sys.executable, LIB, "supervise", rec["job_id"]],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                cwd=sdir,
                env=sup_env,
            )
    clusters_opt = options.get("clusters")
    if options.get("parsable"):
        print(f"{first};{clusters_opt}" if clusters_opt else str(first), flush=True)
    elif not options.get("quiet"):
        print(
            f"Submitted batch job {first}" + (f" on cluster {clusters_opt}" if clusters_opt else ""),
            flush=True,
        )
    if options.get("wait"):
        while True:
            states = [load_record(sdir, r["job_id"]) for r in recs]
            if all(s and s["state"] in FINAL_STATES for s in states):
                if all(s["state"] == "COMPLETED" for s in states):
                    return 0
                return max(s.get("exit_code") or 0 for s in states) or 1
            time.sleep(0.5)
    return 0


# -------------------------------------------------------------------------------------------- supervisor


def supervise(job_id):
    """Run one job: its process group, wall time, cancellation and end state."""
    import subprocess
    import threading

    sdir = state_dir()
    rec = load_record(sdir, job_id)
    if rec is None:
        return 1
    with open(os.path.join(sdir, "scripts", f"{job_id}.env.json")) as f:
        env = json.load(f)
    with Lock(sdir):
        rec = load_record(sdir, job_id)
        if rec["state"] != "PENDING":  # cancelled before it started
            return 0
        rec["supervisor_pid"] = os.getpid()
        save_record(sdir, rec)

    def finish(state, exit_code, exit_signal, reason, extra=None):
        with Lock(sdir):
            cur = load_record(sdir, job_id)
            if cur["state"] == "CANCELLED":
                state, reason = "CANCELLED", "None"
            cur.update(
                state=state,
                exit_code=exit_code,
                exit_signal=exit_signal,
                reason=reason,
                end_time=time.time(),
                **(extra or {}),
            )
            if not cur.get("start_time"):
                cur["start_time"] = cur["end_time"]
            save_record(sdir, cur)

    workdir = rec["workdir"]
    try:
        mode = "a" if rec["options"].get("open-mode") == "append" else "w"
        out = open(rec["output"], mode)  # noqa: SIM115 (handed to the job, closed below)
        err = (
            open(rec["error"], mode)  # noqa: SIM115
            if rec.get("error")
            else subprocess.STDOUT
        )
    except OSError as e:
        print(f"cannot open output: {e}", file=sys.stderr)
        finish("FAILED", 1, 0, "NonZeroExitCode")
        return 0
    if not os.path.isdir(workdir):
        out.write(f"slurmstepd: error: couldn't chdir to `{workdir}': No such file or directory\n")
        out.close()
        finish("FAILED", 1, 0, "NonZeroExitCode")
        return 0
    if rec.get("wrap") is not None:
        cmd = ["/bin/bash", "-c", rec["wrap"]]
    else:
        cmd = [rec["script"]] + list(rec.get("script_args") or [])

    flags = {"done": False, "timed_out": False, "cancelled": False, "killed": False}
    mu = threading.Lock()
    grace = float(rec.get("kill_grace") or 2)

    def timer(delay, fn):
        t = threading.Timer(max(0.0, delay), fn)
        t.daemon = True
        t.start()

    def hard_kill():
        with mu:
            if flags["done"]:
                return
            flags["killed"] = True
            signal_job(rec, signal.SIGKILL)

    def on_time_limit():
        with mu:
            if flags["done"] or flags["cancelled"]:
                return
            flags["timed_out"] = True
            signal_job(rec, signal.SIGCONT)
            signal_job(rec, signal.SIGTERM)
        timer(grace, hard_kill)

    def on_early_signal():
        with mu:
            if flags["done"]:
                return
            info = rec["signal"]
            signal_job(rec, signal_number(info["signal"]), batch_only="B" in info["flags"])
            with Lock(sdir):
                cur = load_record(sdir, job_id)
                cur["signal_sent_time"] = time.time()
                save_record(sdir, cur)

    def on_cancel(signum, frame):  # scancel sent SIGTERM to the job, then SIGUSR1 to us
        flags["cancelled"] = True
        timer(grace, hard_kill)

    # before the job starts: a scancel right after it started must find the handler
    signal.signal(signal.SIGUSR1, on_cancel)

    with Lock(sdir):
        cur = load_record(sdir, job_id)
        if cur["state"] != "PENDING":
            return 0
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        cur.update(state="RUNNING", pid=proc.pid, pgid=proc.pid, start_time=time.time(), node=hostname())
        save_record(sdir, cur)
        rec = cur
    out.close()
    if err is not subprocess.STDOUT:
        err.close()

    limit, scale = rec.get("time_limit_minutes"), rec.get("time_scale")
    if limit is not None and scale is not None:
        limit_s = limit * scale
        timer(limit_s, on_time_limit)
        if rec.get("signal"):
            timer(limit_s - rec["signal"]["seconds"] * scale / 60.0, on_early_signal)

    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    with mu:
        flags["done"] = True
    signal_job(rec, signal.SIGKILL)  # like the end of a job's cgroup: no stray processes survive the job
    rc = proc.returncode
    code, sig = (rc, 0) if rc >= 0 else (0, -rc)
    usage = {"utime": ru.ru_utime, "stime": ru.ru_stime, "maxrss_kb": ru.ru_maxrss}
    if flags["cancelled"]:
        finish("CANCELLED", code, sig, "None", {"usage": usage})
    elif flags["timed_out"]:
        finish("TIMEOUT", code, sig, "TimeLimit", {"usage": usage})
    elif rc == 0:
        finish("COMPLETED", 0, 0, "None", {"usage": usage})
    else:
        finish("FAILED", code, sig, "NonZeroExitCode", {"usage": usage})
    return 0


# ------------------------------------------------------------------------------------------------ scancel


def scancel(argv):
    spec = _spec(
        "account clusters jobname name partition qos reservation signal state user wckey nodelist",
        "batch full help interactive quiet usage verbose version ctld hurry me",
        "",
        "A=account M=clusters n=name p=partition q=qos R=reservation s=signal t=state u=user w=nodelist",
        "b=batch f=full i=interactive Q=quiet v=verbose V=version",
    )
    opts, pos = parse_options(argv, spec, "scancel", stop_at_positional=False)
    o = dict(opts)
    if o.get("version"):
        print("slurm 23.02.0 (fake)")
        return 0
    sdir = state_dir()
    ids = [x for p in pos for x in p.split(",") if x]
    names = [x for x in str(o.get("name") or o.get("jobname") or "").split(",") if x]
    states = [x.upper() for x in str(o.get("state") or "").split(",") if x]
    sig = signal_number(o["signal"]) if o.get("signal") else None
    recs = all_records(sdir)
    rc = 0
    selected = []
    for jid in ids:
        base = jid.split(".")[0]
        match = [
            r
            for r in recs
            if r["job_id"] == base
            or str(r["raw_id"]) == base
            or (r.get("array_job_id") is not None and str(r["array_job_id"]) == base)
        ]
        if not match:
            print(
                f"scancel: error: Kill job error on job id {jid}: Invalid job id specified", file=sys.stderr
            )
            rc = 1
        selected.extend(match)
    if not ids and (
        names or o.get("user") or o.get("me") or states or o.get("partition") or o.get("account")
    ):
        selected = recs
    filtered = []
    for r in selected:
        if names and r["name"] not in names:
            continue
        if states and r["state"] not in states and STATE_CODES.get(r["state"]) not in states:
            continue
        if o.get("partition") and r["partition"] != o["partition"]:
            continue
        if o.get("account") and r["account"] != o["account"]:
            continue
        if r not in filtered:
            filtered.append(r)
    for r in filtered:
        if sig is not None and sig != signal.SIGKILL:
            if r["state"] == "RUNNING":
                signal_job(r, sig, batch_only=bool(o.get("batch")))
            continue
        with Lock(sdir):
            cur = load_record(sdir, r["job_id"])
            prev = cur["state"]
            if prev in FINAL_STATES:
                if ids and not o.get("quiet"):
                    print(
                        f"scancel: error: Kill job error on job id {cur['job_id']}: "
                        "Job/step already completing or completed",
                        file=sys.stderr,
                    )
                continue
            cur.update(state="CANCELLED", reason="None", cancel_time=time.time())
            if prev == "PENDING":
                cur.update(end_time=time.time(), start_time=None, exit_code=0, exit_signal=0)
            save_record(sdir, cur)
        if prev == "RUNNING":
            signal_job(cur, signal.SIGCONT)
            signal_job(cur, signal.SIGKILL if sig == signal.SIGKILL else signal.SIGTERM)
            if cur.get("supervisor_pid"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(cur["supervisor_pid"], signal.SIGUSR1)
    return rc


# --------------------------------------------------------------------------------------------------- srun


def srun(argv):
    opts, pos = parse_options(argv, SRUN_SPEC, "srun", strict=False)
    o = dict(opts)
    if o.get("version"):
        print("slurm 23.02.0 (fake)")
        return 0
    if not pos:
        raise SlurmError("No command given to execute.")
    env = dict(os.environ)
    if o.get("chdir"):
        os.chdir(o["chdir"])
    sdir = os.environ.get("FAKE_SLURM_DIR")
    key = os.environ.get("FAKE_SLURM_JOB_KEY") or os.environ.get("SLURM_JOB_ID")
    step = 0
    if sdir and key and os.path.isdir(os.path.join(sdir, "steps")):
        path = os.path.join(sdir, "steps", f"{key}.jsonl")
        try:
            with open(path, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.seek(0)
                step = sum(1 for _ in f)
                f.write(
                    json.dumps(
                        {
                            "step": step,
                            "name": os.path.basename(pos[0]),
                            "argv": argv,
                            "start_time": time.time(),
                        }
                    )
                    + "\n"
                )
        except OSError:
            pass
    # a step sees its job's Slurm variables (the jobstep executor strips most of them before calling srun)
    if sdir and key:
        try:
            with open(os.path.join(sdir, "scripts", f"{key}.env.json")) as f:
                job_env = json.load(f)
            for k, v in job_env.items():
                if k.startswith(("SLURM_", "SLURMD_", "FAKE_SLURM_")):
                    env.setdefault(k, v)
        except (OSError, ValueError):
            pass
    if o.get("cpus-per-task"):
        env["SLURM_CPUS_PER_TASK"] = str(o["cpus-per-task"])
    if o.get("gpus"):
        env["SLURM_STEP_GPUS"] = str(o["gpus"])
    env["SLURM_STEP_ID"] = env["SLURM_STEPID"] = str(step)
    env["SLURM_STEP_NUM_NODES"] = "1"
    ntasks = int(o.get("ntasks") or 1)
    for name, fd, mode in (
        ("input", 0, os.O_RDONLY),
        ("output", 1, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ("error", 2, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        target = o.get(name)
        if target and target not in ("all", "none"):
            f = os.open(
                target.replace("%j", os.environ.get("SLURM_JOB_ID", "0")).replace("%s", str(step)),
                mode,
                0o644,
            )
            os.dup2(f, fd)
            if name == "output" and not o.get("error"):
                os.dup2(f, 2)
    if ntasks <= 1:
        env.update(SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_STEP_NUM_TASKS="1")
        try:
            os.execvpe(pos[0], pos, env)
        except OSError as e:
            print(f"slurmstepd: error: execve(): {pos[0]}: {e.strerror}", file=sys.stderr)
            return 2
    import subprocess

    procs = []
    for t in range(ntasks):
        procs.append(
            subprocess.Popen(
                pos,
                env=dict(env, SLURM_PROCID=str(t), SLURM_LOCALID=str(t), SLURM_STEP_NUM_TASKS=str(ntasks)),
            )
        )
    return max(abs(p.wait()) for p in procs)


# -------------------------------------------------------------------------------------------------- sacct

SACCT_WIDTHS = {
    "jobid": 12,
    "jobidraw": 12,
    "exitcode": 8,
    "derivedexitcode": 8,
    "nodelist": 15,
    "submit": 19,
    "start": 19,
    "end": 19,
    "reqtres": 30,
    "alloctres": 30,
    "workdir": 30,
    "comment": 30,
    "maxrss": 10,
    "ncpus": 10,
    "nnodes": 8,
}
SACCT_DEFAULT = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"


def _step_rows(sdir, rec):
    """[(row id suffix, step name, step start)] for the steps of a job: batch, then srun steps."""
    if not rec.get("start_time"):
        return []
    rows = [("batch", "batch", rec["start_time"])]
    try:
        with open(os.path.join(sdir, "steps", f"{rec['job_id']}.jsonl")) as f:
            for line in f:
                try:
                    s = json.loads(line)
                except json.JSONDecodeError:
                    continue
                rows.append((str(s["step"]), s["name"], s["start_time"]))
    except OSError:
        pass
    return rows


def sacct_field(rec, field, step=None, steps=(), now=None):
    f = field.lower()
    is_step = step is not None
    suffix, step_name, step_start = step if is_step else (None, None, None)
    jid = rec["job_id"] + (f".{suffix}" if is_step else "")
    usage = rec.get("usage") or {}
    cpu_s = (usage.get("utime") or 0) + (usage.get("stime") or 0)
    # the CPU time goes to the last step that ran (the srun step if there was one)
    owns_usage = not is_step or (steps and steps[-1][0] == suffix)
    el = elapsed(rec, now) if not is_step else max(0, (rec.get("end_time") or now) - step_start)
    pending = rec["state"] == "PENDING"
    values = {
        "jobid": jid,
        "jobidraw": jid,
        "jobname": step_name if is_step else rec["name"],
        "state": rec["state"],
        "exitcode": exit_code_str(rec),
        "derivedexitcode": exit_code_str(rec),
        "account": rec.get("account") or "",
        "partition": "" if is_step else rec.get("partition") or "",
        "comment": "" if is_step else rec.get("comment") or "",
        "user": "" if is_step else rec["user"],
        "uid": "" if is_step else str(os.getuid()),
        "group": "" if is_step else rec["user"],
        "cluster": rec.get("cluster") or cluster_name(),
        "qos": "" if is_step else rec.get("qos") or "normal",
        "elapsed": fmt_duration(el),
        "elapsedraw": str(int(el)),
        "totalcpu": fmt_cpu_time(cpu_s if owns_usage and rec["state"] in FINAL_STATES else 0),
        "usercpu": fmt_cpu_time(usage.get("utime") or 0 if owns_usage else 0),
        "systemcpu": fmt_cpu_time(usage.get("stime") or 0 if owns_usage else 0),
        "cputime": fmt_duration(el * job_cpus(rec)),
        "cputimeraw": str(int(el * job_cpus(rec))),
        "nnodes": "1",
        "ncpus": str(job_cpus(rec)),
        "alloccpus": "0" if pending else str(job_cpus(rec)),
        "reqcpus": str(job_cpus(rec)),
        "ntasks": "1" if is_step else "",
        "maxrss": f"{usage.get('maxrss_kb', 0)}K"
        if is_step and owns_usage and usage
        else ("0" if is_step else ""),
        "averss": f"{usage.get('maxrss_kb', 0)}K"
        if is_step and owns_usage and usage
        else ("0" if is_step else ""),
        "maxvmsize": "0" if is_step else "",
        "reqmem": req_mem(rec),
        "nodelist": "None assigned" if pending else rec.get("node") or hostname(),
        "reason": rec.get("reason") or "None",
        "timelimit": "" if is_step else fmt_limit(rec.get("time_limit_minutes")),
        "timelimitraw": ""
        if is_step
        else ("UNLIMITED" if rec.get("time_limit_minutes") is None else str(int(rec["time_limit_minutes"]))),
        "submit": fmt_ts(step_start if is_step else rec.get("submit_time")),
        "start": fmt_ts(step_start if is_step else rec.get("start_time")),
        "end": fmt_ts(rec.get("end_time")),
        "workdir": rec.get("workdir") or "",
        "reqtres": "" if is_step else job_tres(rec),
        "alloctres": "" if pending else job_tres(rec),
        "reqgres": "gpu:{}".format(rec["gpus"]) if rec.get("gpus") else "",
        "allocgres": "gpu:{}".format(rec["gpus"]) if rec.get("gpus") else "",
        "constraints": rec.get("constraint") or "",
        "reservation": "",
        "priority": "1",
        "submitline": " ".join(rec.get("argv") or []),
        "array_job_id": str(rec.get("array_job_id") or rec["raw_id"]),
        "arrayjobid": str(rec.get("array_job_id") or rec["raw_id"]),
        "arraytaskid": str(rec["array_task_id"]) if rec.get("array_task_id") is not None else "",
        "flags": "",
    }
    if f not in values:
        raise SlurmError(f'Invalid field requested: "{field}"')
    return values[f]


def _parse_format(fmt):
    """'JobIdRaw,State%20,nodelist%-256' -> [(name, width or None, left)]."""
    out = []
    for item in fmt.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, w = item.partition("%")
        left = w.startswith("-")
        out.append((name, int(w.lstrip("-")) if w.lstrip("-").isdigit() else None, left))
    return out


def sacct(argv):
    spec = _spec(
        "accounts cluster clusters constraints delimiter endtime fields format gid group jobs name nodelist "
        "partition qos reason starttime state timelimit-max timelimit-min uid user wckeys",
        "allclusters allocations allusers brief completion dump duplicates help helpformat long noconvert "
        "noheader parsable parsable2 usage verbose version whole-hetjob truncate array local-uid",
        "units",
        "A=accounts C=constraints E=endtime g=group i=nnodes I=ncpus j=jobs k=timelimit-min "
        "K=timelimit-max M=clusters N=nodelist o=format q=qos r=partition S=starttime s=state T=truncate "
        "u=user W=wckeys x=associations",
        "a=allusers b=brief c=completion D=duplicates e=helpformat h=help L=allclusters l=long n=noheader "
        "P=parsable2 p=parsable V=version v=verbose X=allocations",
    )
    opts, pos = parse_options(argv, spec, "sacct", stop_at_positional=False, strict=False)
    o = {}
    for k, v in opts:
        o[k] = v
    if o.get("version"):
        print("slurm 23.02.0 (fake)")
        return 0
    if o.get("helpformat"):
        print(
            "JobID JobIDRaw JobName State ExitCode Account Partition Comment Elapsed TotalCPU NNodes NCPUS\n"
            "MaxRSS ReqMem NodeList Reason Timelimit Submit Start End WorkDir ReqTRES AllocTRES"
        )
        return 0
    sdir = state_dir()
    fmt = o.get("format") or o.get("fields") or ("JobID,State,ExitCode" if o.get("brief") else SACCT_DEFAULT)
    fields = _parse_format(fmt)
    now = time.time()
    job_filters = [x for x in str(o.get("jobs") or "").split(",") if x]
    names = [x for x in str(o.get("name") or "").split(",") if x]
    states = [x.upper() for x in str(o.get("state") or "").split(",") if x]
    accts = [x for x in str(o.get("accounts") or "").split(",") if x]
    parts = [x for x in str(o.get("partition") or "").split(",") if x]
    users = [x for x in str(o.get("user") or "").split(",") if x]
    rows = []
    for rec in all_records(sdir):
        if names and rec["name"] not in names:
            continue
        if states and rec["state"] not in states and STATE_CODES.get(rec["state"]) not in states:
            continue
        if accts and rec.get("account") not in accts:
            continue
        if parts and rec.get("partition") not in parts:
            continue
        if users and rec["user"] not in users:
            continue
        steps = _step_rows(sdir, rec)
        wanted_steps = None  # None: the job and (without -X) its steps
        if job_filters:
            hit = False
            for jf in job_filters:
                base, dot, st = jf.partition(".")
                if base in (rec["job_id"], str(rec["raw_id"])) or (
                    rec.get("array_job_id") is not None and base == str(rec["array_job_id"])
                ):
                    hit = True
                    if dot:
                        wanted_steps = (wanted_steps or set()) | {st}
            if not hit:
                continue
        if wanted_steps is None:
            rows.append((rec, None, steps))
            if not o.get("allocations"):
                rows.extend((rec, s, steps) for s in steps)
        else:
            rows.extend((rec, s, steps) for s in steps if s[0] in wanted_steps)
    lines = []
    parsable = o.get("parsable2") or o.get("parsable")
    delim = o.get("delimiter") or "|"
    if not o.get("noheader"):
        if parsable:
            lines.append(delim.join(n for n, _, _ in fields) + (delim if o.get("parsable") else ""))
        else:
            lines.append(
                " ".join(fmt_cell(n, w or SACCT_WIDTHS.get(n.lower(), 10), left) for n, w, left in fields)
            )
            lines.append(" ".join("-" * (w or SACCT_WIDTHS.get(n.lower(), 10)) for n, w, _ in fields))
    for rec, step, steps in rows:
        vals = [sacct_field(rec, n, step, steps, now) for n, _, _ in fields]
        if parsable:
            lines.append(delim.join(vals) + (delim if o.get("parsable") else ""))
        else:
            lines.append(
                " ".join(
                    fmt_cell(v, w or SACCT_WIDTHS.get(n.lower(), 10), left, "+")
                    for v, (n, w, left) in zip(vals, fields, strict=False)
                )
            )
    # `sacct ... | tail -1` given as one argv (the plugin's get_account does that): play the pipe
    if "|" in pos:
        rest = pos[pos.index("|") + 1 :]
        if rest[:1] == ["tail"]:
            n = int(rest[1].lstrip("-n")) if len(rest) > 1 and rest[1].lstrip("-n").isdigit() else 10
            lines = lines[-n:] if n else []
    if lines:
        print("\n".join(lines))
    return 0


# ------------------------------------------------------------------------------------------------- squeue

SQUEUE_DEFAULT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
SQUEUE_HEADERS = {
    "i": "JOBID",
    "A": "JOBID",
    "j": "NAME",
    "T": "STATE",
    "t": "ST",
    "P": "PARTITION",
    "u": "USER",
    "a": "ACCOUNT",
    "M": "TIME",
    "l": "TIME_LIMIT",
    "L": "TIME_LEFT",
    "D": "NODES",
    "C": "CPUS",
    "m": "MIN_MEMORY",
    "b": "TRES_PER_NODE",
    "R": "NODELIST(REASON)",
    "N": "NODELIST",
    "r": "REASON",
    "o": "COMMAND",
    "Z": "WORK_DIR",
    "k": "COMMENT",
    "q": "QOS",
    "S": "START_TIME",
    "V": "SUBMIT_TIME",
    "e": "END_TIME",
    "F": "ARRAY_JOB_ID",
    "K": "ARRAY_TASK_ID",
    "c": "MIN_CPUS",
    "Q": "PRIORITY",
    "x": "EXC_NODES",
    "y": "NICE",
}
SQUEUE_LONG = {
    "jobid": "i",
    "arrayjobid": "F",
    "arraytaskid": "K",
    "name": "j",
    "state": "T",
    "statecompact": "t",
    "partition": "P",
    "username": "u",
    "userid": "u",
    "account": "a",
    "timeused": "M",
    "timelimit": "l",
    "timeleft": "L",
    "numnodes": "D",
    "numcpus": "C",
    "minmemory": "m",
    "tres-per-node": "b",
    "reasonlist": "R",
    "nodelist": "N",
    "reason": "r",
    "command": "o",
    "workdir": "Z",
    "comment": "k",
    "qos": "q",
    "starttime": "S",
    "submittime": "V",
    "endtime": "e",
    "priority": "Q",
    "jobarrayid": "i",
}


def squeue_field(rec, code, now):
    st = rec["state"]
    left = None
    if rec.get("time_limit_minutes") is not None:
        left = rec["time_limit_minutes"] * 60 - elapsed(rec, now)
    vals = {
        "i": rec["job_id"],
        "A": str(rec["raw_id"]),
        "j": rec["name"],
        "T": st,
        "t": STATE_CODES.get(st, st),
        "P": rec.get("partition") or "",
        "u": rec["user"],
        "a": rec.get("account") or "",
        "M": fmt_squeue_duration(elapsed(rec, now)),
        "l": "UNLIMITED"
        if rec.get("time_limit_minutes") is None
        else fmt_squeue_duration(rec["time_limit_minutes"] * 60),
        "L": "UNLIMITED" if left is None else fmt_squeue_duration(left),
        "D": "1",
        "C": str(job_cpus(rec)),
        "c": str(rec.get("cpus_per_task") or 1),
        "m": (f"{rec['mem_mb']}M" if rec.get("mem_mb") else "0"),
        "b": f"gres/gpu:{rec['gpus']}" if rec.get("gpus") else "N/A",
        "R": ("(None)" if st == "PENDING" else rec.get("node") or hostname()),
        "N": "" if st == "PENDING" else rec.get("node") or hostname(),
        "r": rec.get("reason") or "None",
        "o": rec.get("script") if rec.get("wrap") is None else "(null)",
        "Z": rec.get("workdir") or "",
        "k": rec.get("comment") or "(null)",
        "q": rec.get("qos") or "normal",
        "S": fmt_ts(rec.get("start_time")) if rec.get("start_time") else "N/A",
        "V": fmt_ts(rec.get("submit_time")),
        "e": fmt_ts(rec.get("end_time")) if rec.get("end_time") else "N/A",
        "F": str(rec.get("array_job_id") or rec["raw_id"]),
        "K": str(rec["array_task_id"]) if rec.get("array_task_id") is not None else "N/A",
        "Q": "1",
        "x": "",
        "y": "0",
    }
    return vals.get(code, "")


def _render_percent_format(fmt, value_of, header_of=None):
    """squeue/sinfo %-formats: '%.18i %-9P|%T' with width, '.' = right-justify."""
    out = []
    for m in re.finditer(r"%(\.?)(-?)(\d*)([A-Za-z])|([^%]+|%%)", fmt):
        if m.group(5) is not None:
            out.append("%" if m.group(5) == "%%" else m.group(5))
            continue
        right, _, width, code = m.group(1), m.group(2), m.group(3), m.group(4)
        val = header_of(code) if header_of else value_of(code)
        out.append(fmt_cell(val, int(width) if width else None, left=not right))
    return "".join(out)


def squeue(argv):
    spec = _spec(
        "account clusters format Format jobs licenses name nodelist partition qos reservation sort states "
        "steps user iterate",
        "all array help hide long noconvert noheader start usage verbose version me only-job-state json yaml",
        "",
        "A=account M=clusters o=format O=Format j=jobs n=name p=partition q=qos R=reservation S=sort "
        "t=states u=user w=nodelist i=iterate s=steps L=licenses",
        "a=all h=noheader l=long r=array v=verbose V=version",
    )
    opts, pos = parse_options(argv, spec, "squeue", stop_at_positional=False)
    o = dict(opts)
    if o.get("version"):
        print("slurm 23.02.0 (fake)")
        return 0
    sdir = state_dir()
    now = time.time()
    jobs = [x for x in str(o.get("jobs") or "").split(",") if x] + [x for p in pos for x in p.split(",") if x]
    names = [x for x in str(o.get("name") or "").split(",") if x]
    states = [x.upper() for x in str(o.get("states") or "").split(",") if x]
    users = [x for x in str(o.get("user") or "").split(",") if x]
    parts = [x for x in str(o.get("partition") or "").split(",") if x]
    accts = [x for x in str(o.get("account") or "").split(",") if x]
    recs = []
    for rec in all_records(sdir):
        st = rec["state"]
        if st in FINAL_STATES and (now - (rec.get("end_time") or now)) > min_job_age():
            continue  # purged from slurmctld
        if "ALL" in states:
            pass
        elif states:
            if st not in states and STATE_CODES.get(st) not in states:
                continue
        elif st not in ("PENDING", "RUNNING", "COMPLETING", "SUSPENDED"):
            continue
        if jobs and not any(
            j in (rec["job_id"], str(rec["raw_id"]), str(rec.get("array_job_id"))) for j in jobs
        ):
            continue
        if names and rec["name"] not in names:
            continue
        if users and rec["user"] not in users:
            continue
        if parts and rec.get("partition") not in parts:
            continue
        if accts and rec.get("account") not in accts:
            continue
        recs.append(rec)
    lines = []
    if o.get("Format"):
        cols = []
        for item in o["Format"].split(","):
            name, _, w = item.partition(":")
            code = SQUEUE_LONG.get(name.strip().lower().replace("_", ""), "i")
            cols.append((name, code, int(w) if w.strip(".").isdigit() else 20))
        if not o.get("noheader"):
            lines.append("".join(fmt_cell(n.upper(), w, True) for n, _, w in cols))
        for rec in recs:
            lines.append("".join(fmt_cell(squeue_field(rec, c, now), w, True) for _, c, w in cols))
    else:
        fmt = o.get("format") or SQUEUE_DEFAULT
        if not o.get("noheader"):
            lines.append(_render_percent_format(fmt, None, lambda c: SQUEUE_HEADERS.get(c, c.upper())))
        for rec in recs:
            lines.append(_render_percent_format(fmt, lambda c, r=rec: squeue_field(r, c, now)))
    if lines:
        print("\n".join(lines))
    return 0


# --------------------------------------------------------------------------------------------------- sinfo


def sinfo(argv):
    spec = _spec(
        "clusters format Format iterate nodes partition states sort",
        "all dead exact future help hide long noconvert noheader Node responding list-reasons "
        "summarize usage verbose version json yaml",
        "",
        "M=clusters o=format O=Format i=iterate n=nodes p=partition t=states S=sort",
        "a=all d=dead e=exact h=noheader l=long N=Node r=responding R=list-reasons s=summarize "
        "v=verbose V=version",
    )
    opts, pos = parse_options(argv, spec, "sinfo", stop_at_positional=False)
    o = dict(opts)
    if o.get("version"):
        print("slurm 23.02.0 (fake)")
        return 0
    fmt = o.get("format") or (
        "%9P %.5a %.10l %.16F  %N" if o.get("summarize") else "%9P %.5a %.10l %.6D %.6t %N"
    )
    host, cpus, gpus, mem = hostname(), node_cpus(), node_gpus(), node_mem_mb()
    wanted = [x for x in str(o.get("partition") or "").split(",") if x]
    headers = {
        "P": "PARTITION",
        "R": "PARTITION",
        "a": "AVAIL",
        "l": "TIMELIMIT",
        "D": "NODES",
        "t": "STATE",
        "T": "STATE",
        "N": "NODELIST",
        "n": "HOSTNAMES",
        "c": "CPUS",
        "m": "MEMORY",
        "G": "GRES",
        "C": "CPUS(A/I/O/T)",
        "F": "NODES(A/I/O/T)",
        "f": "AVAIL_FEATURES",
        "s": "JOB_SIZE",
        "e": "FREE_MEM",
        "O": "CPU_LOAD",
        "z": "S:C:T",
        "b": "ACTIVE_FEATURES",
        "X": "SOCKETS",
        "Y": "CORES",
        "Z": "THREADS",
        "E": "REASON",
        "g": "GROUPS",
        "h": "OVERSUBSCRIBE",
        "L": "DEFAULTTIME",
        "p": "PRIO_TIER",
        "S": "ALLOCNODES",
        "w": "WEIGHT",
        "V": "CLUSTER",
    }
    lines = []
    if not o.get("noheader"):
        lines.append(_render_percent_format(fmt, None, lambda c: headers.get(c, c.upper())))
    for name, default in partitions():
        if wanted and name not in wanted:
            continue
        vals = {
            "P": name + ("*" if default else ""),
            "R": name,
            "a": "up",
            "l": "infinite",
            "D": "1",
            "t": "idle",
            "T": "idle",
            "N": host,
            "n": host,
            "c": str(cpus),
            "m": str(mem),
            "G": f"gpu:{gpus}" if gpus else "(null)",
            "C": f"0/{cpus}/0/{cpus}",
            "F": "0/1/0/1",
            "f": "(null)",
            "s": "1-infinite",
            "e": str(mem),
            "O": "0.00",
            "z": f"1:{cpus}:1",
            "b": "(null)",
            "X": "1",
            "Y": str(cpus),
            "Z": "1",
            "E": "none",
            "g": "all",
            "h": "NO",
            "L": "n/a",
            "p": "1",
            "S": "all",
            "w": "1",
            "V": cluster_name(),
        }
        lines.append(_render_percent_format(fmt, lambda c, v=vals: v.get(c, "")))
    print("\n".join(lines))
    return 0


# ------------------------------------------------------------------------------------------------ scontrol


def _scontrol_job(rec, now):
    lim = rec.get("time_limit_minutes")
    cmd = rec.get("script") if rec.get("wrap") is None else "(null)"
    pairs = [
        [("JobId", rec["raw_id"]), ("JobName", rec["name"])]
        + (
            [("ArrayJobId", rec["array_job_id"]), ("ArrayTaskId", rec["array_task_id"])]
            if rec.get("array_job_id") is not None
            else []
        ),
        [("UserId", f"{rec['user']}({os.getuid()})"), ("GroupId", f"{rec['user']}({os.getgid()})")],
        [("Priority", 1), ("Nice", 0), ("Account", rec.get("account") or "(null)"), ("QOS", rec.get("qos"))],
        [("JobState", rec["state"]), ("Reason", rec.get("reason") or "None"), ("Dependency", "(null)")],
        [("Requeue", 0), ("Restarts", 0), ("BatchFlag", 1), ("Reboot", 0), ("ExitCode", exit_code_str(rec))],
        [("RunTime", fmt_duration(elapsed(rec, now))), ("TimeLimit", fmt_limit(lim)), ("TimeMin", "N/A")],
        [("SubmitTime", fmt_ts(rec.get("submit_time"))), ("EligibleTime", fmt_ts(rec.get("submit_time")))],
        [("StartTime", fmt_ts(rec.get("start_time"))), ("EndTime", fmt_ts(rec.get("end_time")))],
        [("Partition", rec.get("partition")), ("AllocNode:Sid", f"{hostname()}:0")],
        [("NodeList", rec.get("node") or "(null)"), ("BatchHost", rec.get("node") or "(null)")],
        [
            ("NumNodes", 1),
            ("NumCPUs", job_cpus(rec)),
            ("NumTasks", rec.get("ntasks") or 1),
            ("CPUs/Task", rec.get("cpus_per_task") or 1),
        ],
        [("TRES", job_tres(rec))],
        [("MinMemoryNode", f"{rec['mem_mb']}M" if rec.get("mem_mb") else "0")],
        [("Features", rec.get("constraint") or "(null)"), ("Reservation", "(null)")],
        [("Command", cmd)],
        [("WorkDir", rec.get("workdir"))],
        [("Comment", rec.get("comment") or "(null)")],
        [("StdErr", rec.get("error") or rec.get("output"))],
        [("StdIn", "/dev/null")],
        [("StdOut", rec.get("output"))],
        [("TresPerNode", f"gres/gpu:{rec['gpus']}" if rec.get("gpus") else "(null)")],
    ]
    return (
        "\n".join("   " * (i > 0) + " ".join(f"{k}={v}" for k, v in line) for i, line in enumerate(pairs))
        + "\n"
    )


def scontrol(argv):
    args = [a for a in argv if not a.startswith("-")]
    flags = [a for a in argv if a.startswith("-")]
    if "-V" in flags or "--version" in flags or args[:1] == ["version"]:
        print("slurm 23.02.0 (fake)")
        return 0
    sdir = state_dir()
    # drop values of -M/--clusters
    clean = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("-M", "--clusters"):
            skip = True
            continue
        if a.startswith("-"):
            continue
        clean.append(a)
    if not clean:
        raise SlurmError("no command given")
    verb, rest = clean[0].lower(), clean[1:]
    cpus, gpus, mem, host = node_cpus(), node_gpus(), node_mem_mb(), hostname()
    if verb == "show" and rest:
        what, ids = rest[0].lower(), rest[1:]
        if what in ("config", "conf", "configuration"):
            items = [
                ("AccountingStorageType", "accounting_storage/slurmdbd"),
                ("ClusterName", cluster_name()),
                ("DefMemPerNode", "UNLIMITED"),
                ("InactiveLimit", "0 sec"),
                ("KillWait", "30 sec"),
                ("MaxArraySize", "1001"),
                ("MaxJobCount", "10000"),
                ("MinJobAge", f"{min_job_age()} sec"),
                ("OverTimeLimit", "0 min"),
                ("SLURM_CONF", os.path.join(sdir, "slurm.conf")),
                ("SLURM_VERSION", "23.02.0"),
                ("SchedulerType", "sched/backfill"),
                ("SelectType", "select/cons_tres"),
                ("SlurmctldHost[0]", host),
            ]
            print(f"Configuration data as of {fmt_ts(time.time())}")
            for k, v in items:
                print(f"{k:<23} = {v}")
            return 0
        if what in ("partition", "partitions"):
            out = []
            for name, default in partitions():
                if ids and name not in ids:
                    continue
                tres = f"cpu={cpus},mem={mem}M,node=1,billing={cpus}" + (f",gres/gpu={gpus}" if gpus else "")
                out.append(
                    f"PartitionName={name}\n"
                    "   AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL\n"
                    f"   AllocNodes=ALL Default={'YES' if default else 'NO'} QoS=N/A\n"
                    "   DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO\n"
                    "   MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED\n"
                    f"   Nodes={host}\n"
                    "   PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO\n"
                    "   OverTimeLimit=NONE PreemptMode=OFF\n"
                    f"   State=UP TotalCPUs={cpus} TotalNodes=1 SelectTypeParameters=NONE\n"
                    "   JobDefaults=(null)\n"
                    "   DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED\n"
                    f"   TRES={tres}\n"
                )
            if ids and not out:
                raise SlurmError(f"Partition {ids[0]} not found")
            print("\n".join(out))
            return 0
        if what in ("job", "jobs"):
            recs = all_records(sdir)
            if ids:
                recs = [
                    r
                    for r in recs
                    if r["job_id"] in ids or str(r["raw_id"]) in ids or str(r.get("array_job_id")) in ids
                ]
                if not recs:
                    raise SlurmError("Invalid job id specified")
            now = time.time()
            print("\n".join(_scontrol_job(r, now) for r in recs))
            return 0
        if what in ("node", "nodes"):
            print(
                f"NodeName={host} Arch=x86_64 CoresPerSocket={cpus}\n"
                f"   CPUAlloc=0 CPUEfctv={cpus} CPUTot={cpus} CPULoad=0.00\n"
                f"   Gres={f'gpu:{gpus}' if gpus else '(null)'}\n"
                f"   NodeAddr={host} NodeHostName={host}\n"
                f"   RealMemory={mem} AllocMem=0 FreeMem={mem} Sockets=1 Boards=1\n"
                f"   State=IDLE ThreadsPerCore=1 TmpDisk=0 Weight=1\n"
                f"   Partitions={','.join(p for p, _ in partitions())}\n"
            )
            return 0
        if what == "hostnames":
            for spec_ in ids or [os.environ.get("SLURM_JOB_NODELIST", host)]:
                m = re.fullmatch(r"(.*)\[(.+)\]", spec_)
                if not m:
                    print("\n".join(spec_.split(",")))
                    continue
                for part in m.group(2).split(","):
                    lo, _, hi = part.partition("-")
                    for n in range(int(lo), int(hi or lo) + 1):
                        print(f"{m.group(1)}{str(n).zfill(len(lo))}")
            return 0
        raise SlurmError(f"invalid entity: {what} for keyword:show")
    if verb in ("ping",):
        print(f"Slurmctld(primary) at {host} is UP")
        return 0
    raise SlurmError(f"Invalid command: {verb} (the fake supports show config|partition|job|node|hostnames)")


# ------------------------------------------------------------------------------------- sacctmgr and sshare


def sacctmgr(argv):
    flags = [a for a in argv if a.startswith("-")]
    args = [a for a in argv if not a.startswith("-")]
    if "-V" in flags or "--version" in flags:
        print("slurm 23.02.0 (fake)")
        return 0
    noheader = any(f in ("-n", "--noheader") or (not f.startswith("--") and "n" in f) for f in flags)
    parsable2 = any(f in ("-P", "--parsable2") or (not f.startswith("--") and "P" in f) for f in flags)
    parsable = not parsable2 and any(f in ("-p", "--parsable") for f in flags)
    fmt = next((a.split("=", 1)[1] for a in args if a.lower().startswith("format=")), None)
    words = [a.lower() for a in args if "=" not in a]
    if not words or words[0] not in ("list", "show"):
        raise SlurmError("the fake sacctmgr supports only list/show")
    entity = words[1] if len(words) > 1 else "user"
    user = username()
    rows = []
    for acct in accounts():
        rows.append(
            {
                "account": acct,
                "user": user,
                "cluster": cluster_name(),
                "partition": "",
                "qos": "normal",
                "defaultaccount": accounts()[0],
                "share": "1",
                "admin": "None",
                "descr": acct,
                "org": acct,
                "par name": "",
            }
        )
    if entity in ("account", "accounts"):
        default_fmt = "Account,Descr,Org"
    elif entity in ("association", "associations", "assoc"):
        default_fmt = "Cluster,Account,User,Partition,Share,QOS"
    elif entity in ("cluster", "clusters"):
        rows = [{"cluster": cluster_name(), "controlhost": hostname(), "controlport": "6817", "rpc": "9984"}]
        default_fmt = "Cluster,ControlHost,ControlPort,RPC"
    else:
        default_fmt = "User,DefaultAccount,Admin" + (
            ",Cluster,Account,Partition,QOS" if "-s" in flags or "--withassoc" in flags else ""
        )
    cols = _parse_format(fmt or default_fmt)
    lines = []
    if not noheader:
        if parsable or parsable2:
            lines.append("|".join(n for n, _, _ in cols) + ("|" if parsable else ""))
        else:
            lines.append(" ".join(fmt_cell(n, w or 10, left) for n, w, left in cols))
            lines.append(" ".join("-" * (w or 10) for n, w, _ in cols))
    for row in rows:
        vals = [row.get(n.lower(), "") for n, _, _ in cols]
        if parsable or parsable2:
            lines.append("|".join(vals) + ("|" if parsable else ""))
        else:
            lines.append(
                " ".join(fmt_cell(v, w or 10, left, "+") for v, (n, w, left) in zip(vals, cols, strict=False))
            )
    if lines:
        print("\n".join(lines))
    return 0


def sshare(argv):
    spec = _spec(
        "accounts clusters format users partition",
        "all help long noheader parsable parsable2 Users usage verbose version",
        "",
        "A=accounts M=clusters o=format u=users",
        "a=all h=help l=long n=noheader P=parsable2 p=parsable U=Users v=verbose V=version m=partition",
    )
    opts, _ = parse_options(argv, spec, "sshare", stop_at_positional=False, strict=False)
    o = dict(opts)
    if o.get("version"):
        print("slurm 23.02.0 (fake)")
        return 0
    cols = _parse_format(
        o.get("format") or "Account,User,RawShares,NormShares,RawUsage,EffectvUsage,FairShare"
    )
    user = username()
    rows = [
        {
            "account": a,
            "user": user,
            "rawshares": "1",
            "normshares": "1.000000",
            "rawusage": "0",
            "effectvusage": "0.000000",
            "fairshare": "1.000000",
            "cluster": cluster_name(),
        }
        for a in accounts()
    ]
    parsable = o.get("parsable") or o.get("parsable2")
    lines = []
    if not o.get("noheader"):
        if parsable:
            lines.append("|".join(n for n, _, _ in cols))
        else:
            lines.append(" ".join(fmt_cell(n, w or 10, left) for n, w, left in cols))
            lines.append(" ".join("-" * (w or 10) for n, w, _ in cols))
    for row in rows:
        vals = [row.get(n.lower(), "") for n, _, _ in cols]
        lines.append(
            "|".join(vals)
            if parsable
            else " ".join(fmt_cell(v, w or 10, left) for v, (n, w, left) in zip(vals, cols, strict=False))
        )
    if lines:
        print("\n".join(lines))
    return 0


# ----------------------------------------------------------------------------------------------- dispatch

COMMANDS = {
    "sbatch": sbatch,
    "squeue": squeue,
    "sacct": sacct,
    "scancel": scancel,
    "sinfo": sinfo,
    "srun": srun,
    "scontrol": scontrol,
    "sacctmgr": sacctmgr,
    "sshare": sshare,
}


def main(prog, argv):
    try:
        return COMMANDS[prog](argv) or 0
    except SlurmError as e:
        msg = str(e)
        if msg.startswith(("unrecognized option", "invalid option", "option ")):
            print(f'{prog}: {msg}\nTry "{prog} --help" for more information', file=sys.stderr)
        else:
            print(f"{prog}: error: {msg}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "supervise":
        sys.exit(supervise(sys.argv[2]))
    if len(sys.argv) >= 2 and sys.argv[1] in COMMANDS:
        sys.exit(main(sys.argv[1], sys.argv[2:]))
    print(f"usage: {sys.argv[0]} supervise <job id> | <command> [args]", file=sys.stderr)
    sys.exit(2)
