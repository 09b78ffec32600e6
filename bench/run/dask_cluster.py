"""Starting and reaching a Dask cluster for `--executor dask | dask-local`.

- dask-local: a one-node SpecCluster on the loopback interface, one Nanny per worker; with
  GPUs, worker i sees only GPU i (CUDA_VISIBLE_DEVICES) and offers the resource GPU=1.
- dask: a client of a running scheduler, checked first (its port accepts, it answers an
  `identity` request as a Scheduler) because distributed's Client waits forever on a port
  that accepts and never answers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator

from bench.devices import cpu_count
from bench.errors import MetabenchError

GPU_RESOURCE = "GPU"
# Dask's Nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap
# threshold at 128 KiB: every activation buffer is then mmap'ed and unmapped, and a Conv-4
# cell ran 2.3x slower in a dask-local worker than in the driver (docs/cluster.md). None
# drops the variable, so workers allocate as a local run does.
MALLOC_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def require_gpu_workers(client, device: str) -> None:
    """CUDA cells would wait forever on a cluster without GPU=1 workers: fail fast (called
    once the workers have joined, before the run folder is created)."""
    if not device.startswith("cuda"):
        return
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    if not any(w.get("resources", {}).get(GPU_RESOURCE, 0) >= 1 for w in workers):
        raise MetabenchError(
            "--executor: expected Dask workers with the resource GPU=1 for --device cuda "
            "(start them with `dask worker ADDRESS --nthreads 1 --resources GPU=1`, one per "
            "GPU with CUDA_VISIBLE_DEVICES set), found none"
        )


def visible_gpus() -> list[str]:
    """The GPUs this node may use: CUDA_VISIBLE_DEVICES entries, else all torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_specs(n_workers: int, gpus: list[str], threads: int) -> dict[str, dict]:
    """Nanny specs for a single-node cluster: one process per worker, one task at a time,
    `threads` OpenMP/MKL threads (the cells' torch threads). With GPUs, worker i sees only
    GPU i (as dask-cuda's LocalCUDACluster does, but alone) and offers GPU=1."""
    from distributed import Nanny

    specs = {}
    for i in range(n_workers):
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        options: dict = {
            "nthreads": 1,
            "host": "127.0.0.1",
            "env": env,
            "dashboard": False,
            "silence_logs": logging.ERROR,
        }
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i]
            options["resources"] = {GPU_RESOURCE: 1}
        specs[f"gpu{gpus[i]}" if gpus else f"cpu{i}"] = {"cls": Nanny, "options": options}
    return specs


def default_workers(device: str, threads: int) -> int:
    """dask-local's workers: one per visible GPU, or as many as fit the cores at `threads`
    torch threads each (workers x threads <= cores), at least one."""
    if device.startswith("cuda"):
        return len(visible_gpus())
    return max(1, cpu_count() // threads)


def start_local_cluster(n_workers: int | None, device: str, threads: int, retries: int):
    """A single-node cluster on the loopback interface, not started until entered."""
    import dask
    from distributed import Scheduler, SpecCluster

    gpus = visible_gpus() if device.startswith("cuda") else []
    if device.startswith("cuda") and not gpus:
        raise MetabenchError("--executor dask-local: expected GPUs for --device cuda, found none")
    n_workers = n_workers or default_workers(device, threads)
    if gpus and n_workers > len(gpus):
        raise MetabenchError(
            f"--workers: expected at most one worker per GPU ({len(gpus)}), found {n_workers}"
        )
    scheduler = {
        "cls": Scheduler,
        "options": {
            "host": "127.0.0.1",
            "dashboard": False,
            "dashboard_address": "127.0.0.1:0",  # its HTTP endpoints: any free port
            "allowed_failures": retries,
        },
    }
    # The Nannies spawn their workers in this call, reading this setting as they do.
    with dask.config.set({MALLOC_TRIM_KEY: None}):
        return SpecCluster(
            scheduler=scheduler,
            workers=worker_specs(n_workers, gpus, threads),
            silence_logs=logging.ERROR,
        )


CONNECT_TIMEOUT_S = 30  # reaching the scheduler's host and port
HANDSHAKE_TIMEOUT_S = 10  # a scheduler answers in milliseconds once connected


@contextlib.contextmanager
def connect(address: str, wait_workers: int, progress: bool = True) -> Iterator:
    """A client of the scheduler at `address`, once `wait_workers` workers have joined
    (a batch system may start them long after the scheduler; Ctrl-C stops the wait).
    Raises MetabenchError within CONNECT_TIMEOUT_S + HANDSHAKE_TIMEOUT_S when nothing
    listens there or what listens is not a Dask scheduler (e.g. its HTTP dashboard)."""
    from distributed import Client

    if progress:  # a silent port takes the whole timeout to give up: say what is happening
        print(
            f"metabench: connecting to the Dask scheduler at {address} (gives up after "
            f"{CONNECT_TIMEOUT_S + HANDSHAKE_TIMEOUT_S} s)",
            file=sys.stderr,
            flush=True,
        )
    check_scheduler(address)
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except OSError as e:
        raise MetabenchError(f"--scheduler: could not connect to {address!r}: {e}") from None
    with client:
        joined = len(client.scheduler_info(n_workers=-1)["workers"])
        if joined < wait_workers:
            print(
                f"metabench: waiting for {wait_workers} Dask worker(s) at {address} "
                f"({joined} joined so far; Ctrl-C to stop)",
                file=sys.stderr,
                flush=True,
            )
            client.wait_for_workers(wait_workers)
        yield client


def check_scheduler(address: str) -> None:
    """A Dask scheduler answers at `address`: its port accepts a connection and it replies
    to an `identity` request, each within its timeout. Anything else is a MetabenchError:
    distributed's own Client waits forever on a port that accepts and never answers."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect as dask_connect
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme == "tcp":  # refused or unreachable: say so at once, not after the timeout
        host, port = parse_host_port(location, 8786)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise MetabenchError(
                f"--scheduler: could not connect to {address!r}: nothing accepts connections "
                f"at {host}:{port} ({e.strerror or e}); is the scheduler running there?"
            ) from None

    async def identity() -> dict:
        comm = await dask_connect(address, timeout=CONNECT_TIMEOUT_S)
        try:
            await comm.write({"op": "identity"})
            return await asyncio.wait_for(comm.read(), HANDSHAKE_TIMEOUT_S)
        finally:
            comm.abort()

    def ask() -> dict:  # its own thread and loop: a notebook's loop may be running here
        return asyncio.run(asyncio.wait_for(identity(), CONNECT_TIMEOUT_S + HANDSHAKE_TIMEOUT_S))

    try:
        with ThreadPoolExecutor(1) as pool:
            reply = pool.submit(ask).result()
    except Exception as e:  # a timeout, a refused handshake, a reply that is not Dask's
        why = "no answer in time" if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
        raise MetabenchError(
            f"--scheduler: expected a Dask scheduler at {address!r}, found something that "
            f"does not answer as one ({why}); is that the dashboard's port? The scheduler "
            "listens on 8786 by default"
        ) from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise MetabenchError(
            f"--scheduler: expected a Dask scheduler at {address!r}, found a "
            f"{reply.get('type', 'server') if isinstance(reply, dict) else 'server'}"
        )
