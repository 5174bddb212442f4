"""The workflow on a real SLURM cluster. workflow/cluster/local_slurm.sh brings up a single-node SLURM on this machine
(Debian's munge, slurmctld, slurmd, and slurmdbd on MariaDB: the executor plugin checks accounts with sacctmgr);
`snakemake --profile workflow/profiles/slurm` runs the small toy-world workflow through sbatch, and its outputs are
byte-identical to a local run; an explanation job killed by the scheduler (scancel) is detected and retried, and the
outputs are still identical. The cluster is always taken down, and no daemon may be left.

Needs root (apt-get installs the Debian packages at run time if they are missing; the daemons); skipped otherwise.
Select or deselect with `-m slurm`."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from test_workflow import SNAKEMAKE, _outputs, small_config, snakemake

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "workflow" / "cluster" / "local_slurm.sh"
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
GPU_RULES = ("explain_images", "explain_texts", "sam_masks")
DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "slurmstepd", "munged", "mariadbd")


def _cannot_run() -> str | None:
    if sys.platform != "linux" or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root on Linux: installs Debian's SLURM, munge and MariaDB and starts their daemons"
    tools = ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch")
    if not all(shutil.which(t) for t in tools) and not shutil.which("apt-get"):
        return "SLURM/munge/MariaDB are not installed and there is no apt-get to install them"
    return None


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _run(cmd, env, timeout=60, check=True) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


@pytest.fixture(scope="module")
def cluster():
    reason = _cannot_run()
    if reason:
        pytest.skip(reason)
    profile = yaml.safe_load(PROFILE.read_text())
    # the test cluster has the partition and account the profile names, so the profile's values are used as they are
    partition = str(profile["default-resources"]["slurm_partition"])
    account = str(profile["default-resources"]["slurm_account"])
    # the state folder must be reachable by the mysql and munge users: not under pytest's private tmp
    state = Path(tempfile.mkdtemp(prefix="gradeclip-slurm-test-", dir="/tmp"))
    env = dict(os.environ, GRADECLIP_SLURM_DIR=str(state), GRADECLIP_SLURM_PARTITION=partition,
               GRADECLIP_SLURM_ACCOUNT=account, GRADECLIP_SLURM_PORTS=" ".join(map(str, _free_ports(4))))
    env.pop("SLURM_CONF", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        _run([str(CLUSTER), "up"], env, timeout=900)
        memory = int(_run(["sinfo", "-h", "-o", "%m"], env).stdout.split()[0].rstrip("+"))
        yield {"env": env, "partition": partition, "account": account, "memory_mb": memory}
    finally:
        down = _run([str(CLUSTER), "down", "--purge"], env, timeout=300, check=False)
        shutil.rmtree(state, ignore_errors=True)
        left = {d: subprocess.run(["pgrep", "-a", "-x", d], capture_output=True, text=True).stdout.strip()
                for d in DAEMONS}
        assert down.returncode == 0, f"teardown failed:\n{down.stdout}\n{down.stderr}"
        assert not any(left.values()), f"daemons left after teardown: {left}"


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The same small workflow run locally (--cores 2): what the cluster runs must reproduce byte for byte."""
    tmp = tmp_path_factory.mktemp("local")
    snakemake(small_config(tmp))
    return tmp


def _test_profile(cluster, tmp_path: Path, logdir: Path) -> Path:
    """workflow/profiles/slurm as it is, with what a 2-core test node without GPUs needs: no GPU requests (there are
    none to give; the toy world asks for none anyway), memory requests the node can hold, and quick status checks."""
    cfg = yaml.safe_load(PROFILE.read_text())
    cap = cluster["memory_mb"] // 2
    cfg["default-resources"]["mem_mb"] = min(int(cfg["default-resources"].get("mem_mb", cap)), cap)
    for rule, res in cfg.get("set-resources", {}).items():
        for key in ("gpu", "gpus", "gres", "gpu_model", "slurm_extra", "slurm_partition", "slurm_account"):
            res.pop(key, None)
        if "mem_mb" in res:
            res["mem_mb"] = min(int(res["mem_mb"]), cap)
        if rule in GPU_RULES:
            res["gpu"] = 0
    cfg.update({"slurm-init-seconds-before-status-checks": 2, "slurm-keep-successful-logs": True,
                "slurm-logdir": str(logdir), "latency-wait": 5})
    path = tmp_path / "profile"
    path.mkdir()
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _snakemake_cmd(profile: Path, configfile: Path) -> list[str]:
    return SNAKEMAKE + ["--profile", str(profile), "--configfile", str(configfile)]


def _sacct(env, job_ids) -> dict[str, tuple[str, str]]:
    out = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State,Comment", "-j", ",".join(job_ids)], env).stdout
    return {line.split("|")[0]: (line.split("|")[1], line.split("|")[2]) for line in out.splitlines() if line}


def _assert_same_outputs(tmp: Path, reference: Path):
    got, want = _outputs(tmp), _outputs(reference)
    assert got.keys() == want.keys() and got
    for name, content in got.items():
        assert content == want[name], name


def test_profile_runs_the_workflow_through_sbatch_with_identical_outputs(cluster, local_reference, tmp_path):
    env = cluster["env"]
    logdir = tmp_path / "slurm_logs"
    profile = _test_profile(cluster, tmp_path, logdir)
    cfg = small_config(tmp_path)
    out = subprocess.run(_snakemake_cmd(profile, cfg), cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=540)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-6000:]
    # every job but the local rules went through sbatch, and SLURM's accounting has them all COMPLETED
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", text)
    jobs = _sacct(env, job_ids)
    assert set(jobs) == set(job_ids) and all(state == "COMPLETED" for state, _ in jobs.values()), jobs
    comments = sorted(comment for _, comment in jobs.values())
    for rule in ("toy_scenes", "study_design", "explain_images", "explain_texts", "attribute_summary",
                 "addibility_summary", "concreteness_summary", "galleries"):
        assert any(c.startswith(f"rule_{rule}") for c in comments), (rule, comments)
    # the per-shard tables ran as one grouped job, the report (a local rule) on this "login node"
    assert sum(c.startswith("rule_shard_tables") for c in comments) == 1, comments
    assert not any("attribute_metrics_wildcards" in c or c.startswith("rule_report") for c in comments), comments
    assert (tmp_path / "reports" / "report.html").exists()
    assert list(logdir.glob("rule_explain_images/*/*.log")) and list(logdir.glob("group_shard_tables*/*.log"))
    _assert_same_outputs(tmp_path, local_reference)


def test_job_killed_by_the_scheduler_is_retried_with_identical_outputs(cluster, local_reference, tmp_path):
    env = cluster["env"]
    profile = _test_profile(cluster, tmp_path, tmp_path / "slurm_logs")
    cfg = small_config(tmp_path)
    log = tmp_path / "snakemake.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(_snakemake_cmd(profile, cfg), cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    cancelled = None
    try:
        # scancel an explanation job while its script runs: once the job's rule log has been (re)written
        deadline = time.time() + 300
        while cancelled is None and time.time() < deadline and proc.poll() is None:
            queue = _run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k|%S"], env, check=False).stdout
            for line in queue.splitlines():
                job_id, comment, start = line.split("|")
                if not comment.startswith("rule_explain_images_wildcards_"):
                    continue
                heads, shard = comment.rsplit("_", 2)[1:]  # wildcards {heads} and {shard}, in that order
                rule_log = ROOT / "logs" / "explain_images" / heads / f"shard_{shard}.log"
                job_start = datetime.fromisoformat(start).timestamp()
                seen = time.time()
                while time.time() - seen < 30:
                    if rule_log.exists() and rule_log.stat().st_mtime >= job_start - 1 and rule_log.stat().st_size:
                        break
                    time.sleep(0.1)
                if _run(["scancel", job_id], env, check=False).returncode == 0:
                    cancelled = (job_id, comment)
                    print(f"scancel {job_id} ({comment}) {time.time() - job_start:.1f} s after it started, its rule "
                          f"log written: {rule_log.exists() and rule_log.stat().st_mtime >= job_start - 1}")
                break
            time.sleep(0.2)
        assert cancelled, f"no running explain_images job to cancel:\n{log.read_text()[-4000:]}"
        proc.wait(timeout=540)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text[-6000:]
    job_id, comment = cancelled
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED'" in text, text[-6000:]
    assert "Trying to restart job" in text
    jobs = _sacct(env, re.findall(r"has been submitted with SLURM jobid (\d+)", text))
    assert jobs[job_id][0].startswith("CANCELLED")
    retried = [j for j, (state, c) in jobs.items() if c == comment and int(j) > int(job_id)]
    assert retried and all(jobs[j][0] == "COMPLETED" for j in retried), jobs
    _assert_same_outputs(tmp_path, local_reference)
