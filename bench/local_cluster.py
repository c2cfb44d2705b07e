"""Processes on 127.0.0.1: free ports, a TF_CONFIG cluster of workers, and running
processes side by side with a time limit (device_matrix and tests/training/test_distribute.py)."""
import json
import os
import random
import socket
import subprocess


def free_ports(count):
    """`count` ports free now, below the kernel's ephemeral range: a port from that range
    can be taken, before its worker binds it, by an outgoing connection's source port
    (even the other worker's own connection attempt to it: a TCP self-connect)."""
    low = 32768
    if os.path.exists("/proc/sys/net/ipv4/ip_local_port_range"):
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    ports = []
    for port in random.Random().sample(range(low // 2, low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"no {count} free ports below {low}")


def worker_envs(num_workers, env):
    """-> one copy of env per worker of a new cluster on free local ports, with its TF_CONFIG."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(num_workers)]}
    return [dict(env, TF_CONFIG=json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": index}}))
            for index in range(num_workers)]


def run_processes(commands, envs, cwd, timeout_s):
    """Runs the commands at once -> [(exit code, stderr)]; kills each at timeout_s, and
    every one still running if this process is interrupted."""
    procs = [subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for command, env in zip(commands, envs)]
    results = []
    try:
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                err += f"\nkilled after {timeout_s} s"
            results.append((proc.returncode, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results
