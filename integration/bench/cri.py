#!/usr/bin/env python3
"""CRI latency probe for integration/bench.sh (make bench).

    cri.py --address SOCK --handler H --name NAME --image IMG

Runs one host-network pod through the CRI v1 RuntimeService of containerd's CRI plugin:
RunPodSandbox, CreateContainer, StartContainer, then ContainerStatus until RUNNING, and
prints two numbers on stdout, in microseconds:

    <RunPodSandbox latency> <RunPodSandbox start .. container RUNNING>

then stops and removes the pod (StopPodSandbox, RemovePodSandbox). Exits non-zero with a
message on stderr when a call fails or the pod cannot be removed.

It needs the `grpc` module (Debian: python3-grpcio) and nothing generated: the few CRI
messages it uses are encoded and decoded here by hand, with the field numbers of
k8s.io/cri-api's runtime/v1 api.proto, and sent as raw bytes.
"""

import argparse
import sys
import time

import grpc

SERVICE = "/runtime.v1.RuntimeService/"

# NamespaceMode and ContainerState of api.proto
NS_POD, NS_CONTAINER, NS_NODE = 0, 1, 2
CONTAINER_RUNNING = 1


# ---- protobuf wire format (just what these messages need) ---------------------------------
def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_bytes(field, data):
    """A length-delimited field (string, bytes, embedded message); empty ones are omitted."""
    if isinstance(data, str):
        data = data.encode()
    if not data:
        return b""
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def f_int(field, n):
    """A varint field (enum, bool, uint32, int64 >= 0); zero is omitted, as proto3 does."""
    if not n:
        return b""
    return _varint(field << 3) + _varint(n)


def decode(data):
    """Top-level fields of a message: {field: [value, ...]} (ints or bytes)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _read_varint(data, i)
        elif wt == 2:
            ln, i = _read_varint(data, i)
            val, i = data[i:i + ln], i + ln
        elif wt == 1:
            val, i = data[i:i + 8], i + 8
        elif wt == 5:
            val, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        fields.setdefault(field, []).append(val)
    return fields


def _read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def first(fields, field, default=b""):
    return fields.get(field, [default])[0]


# ---- the CRI messages ----------------------------------------------------------------------
def pod_config(name):
    metadata = f_bytes(1, name) + f_bytes(2, name) + f_bytes(3, "robust-bench")
    ns_options = f_int(1, NS_NODE) + f_int(2, NS_CONTAINER) + f_int(3, NS_POD)
    security = f_bytes(1, ns_options)
    linux = f_bytes(2, security)
    # PodSandboxConfig: metadata = 1, linux = 8 (host network: no hostname, no CNI)
    return f_bytes(1, metadata) + f_bytes(8, linux)


def container_config(name, image):
    cfg = f_bytes(1, f_bytes(1, name))  # metadata{name}
    cfg += f_bytes(2, f_bytes(1, image))  # image{image}
    for arg in ("sleep", "3600"):
        cfg += f_bytes(3, arg)  # command
    return cfg


class Cri:
    def __init__(self, address):
        self.channel = grpc.insecure_channel("unix://" + address)

    def call(self, method, request, timeout):
        fn = self.channel.unary_unary(SERVICE + method)  # raw bytes in and out
        try:
            return decode(fn(request, timeout=timeout))
        except grpc.RpcError as e:
            raise SystemExit(f"cri.py: {method}: {e.code().name}: {e.details()}") from None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--address", required=True)
    ap.add_argument("--handler", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--timeout", type=float, default=60.0, help="bound of each call, seconds")
    a = ap.parse_args()

    cri = Cri(a.address)
    # connect before the clock starts: the channel set-up is not the runtime's latency
    grpc.channel_ready_future(cri.channel).result(timeout=a.timeout)

    pod = pod_config(a.name)
    t0 = time.monotonic_ns()
    r = cri.call("RunPodSandbox", f_bytes(1, pod) + f_bytes(2, a.handler), a.timeout)
    t_pod = time.monotonic_ns()
    pod_id = first(r, 1).decode()
    err = None
    try:
        r = cri.call(
            "CreateContainer",
            f_bytes(1, pod_id) + f_bytes(2, container_config("c1", a.image)) + f_bytes(3, pod),
            a.timeout,
        )
        cid = first(r, 1).decode()
        cri.call("StartContainer", f_bytes(1, cid), a.timeout)
        deadline = time.monotonic() + a.timeout
        while True:
            st = decode(first(cri.call("ContainerStatus", f_bytes(1, cid), a.timeout), 1))
            if first(st, 3, 0) == CONTAINER_RUNNING:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"cri.py: container {cid} not RUNNING within {a.timeout} s")
            time.sleep(0.002)
        t_run = time.monotonic_ns()
        print((t_pod - t0) // 1000, (t_run - t0) // 1000, flush=True)
    except SystemExit as e:
        err = e
    # the pod goes away whatever happened above
    try:
        cri.call("StopPodSandbox", f_bytes(1, pod_id), a.timeout)
        cri.call("RemovePodSandbox", f_bytes(1, pod_id), a.timeout)
    except SystemExit as e:
        err = err or e
    if err:
        raise err


if __name__ == "__main__":
    sys.exit(main())
