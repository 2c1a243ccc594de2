#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets to fuzz/corpus/<target>/.

The seeds are committed; this script documents where each comes from and
rewrites them (`python3 fuzz/make_corpus.py`). Real samples where the
project has them (runtime-config/*.toml), the rest shaped like what runc,
runsc, containerd and the kernel write. Protobuf messages are encoded here
by hand, field by field, as the unit tests of crates/config build them.
"""
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
SEP = b"\xff"


def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """One protobuf field: bytes/str are length-delimited, bool/int varints."""
    if isinstance(value, bool):
        return varint(num << 3) + varint(int(value))
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def any_msg(type_url, value):
    return field(1, type_url) + field(2, value)


def runc_options(**kw):
    nums = {"no_pivot_root": 1, "no_new_keyring": 2, "shim_cgroup": 3, "io_uid": 4,
            "io_gid": 5, "binary_name": 6, "root": 7, "criu_path": 8,
            "systemd_cgroup": 9, "criu_image_path": 10}
    return b"".join(field(nums[k], v) for k, v in kw.items())


def runtime_options(type_url="", config_path="", config_body=b""):
    out = b""
    if type_url:
        out += field(1, type_url)
    if config_path:
        out += field(2, config_path)
    if config_body:
        out += field(3, config_body)
    return out


def bootstrap(extensions=(), socket_dir=None, log_level=-4, **kw):
    out = field(1, kw.get("instance_id", "c1")) + field(2, kw.get("namespace", "k8s.io"))
    out += field(3, log_level)
    out += field(4, kw.get("containerd_version", "2.3.0"))
    out += field(5, "/run/containerd/containerd.sock.ttrpc")
    out += field(6, "/run/containerd/containerd.sock")
    out += field(7, "/usr/bin/containerd")
    for url, value in extensions:
        out += field(8, field(1, any_msg(url, value)))
    if socket_dir is not None:
        out += field(9, socket_dir)
    return out


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


def opts_json(**over):
    c = {"runtime": {"binary": "runc", "systemd_cgroup": False, "no_pivot_root": False,
                     "no_new_keyring": False, "kind": "runc"},
         "timeouts": {"create": "30s", "start": "30s", "exec": "30s", "kill": "10s",
                      "delete": "10s", "state": "5s", "pause": "10s", "resume": "10s",
                      "update": "10s", "ps": "5s", "default": "10s", "stop_grace": "10s",
                      "kill_grace": "2s", "shutdown": "5s", "unmount": "2s", "publish": "30s"},
         "log_level": "info", "runsc_config": {}}
    for k, v in over.items():
        c[k] = v
    return json.dumps(c, separators=(",", ":")).encode()


RUNSC_OPTS = opts_json(runtime={"binary": "/usr/bin/runsc", "root": "/run/containerd/runsc",
                                "systemd_cgroup": False, "no_pivot_root": False,
                                "no_new_keyring": False, "kind": "runsc"},
                       runsc_config={"platform": "ptrace", "network": "none", "debug": False})
SPEC = json.dumps({"ociVersion": "1.0.2", "process": {"args": ["sh"]},
                   "annotations": {"io.kubernetes.cri.container-type": "sandbox"},
                   "linux": {"cgroupsPath": "/k8s.io/c1",
                             "namespaces": [{"type": "pid"}, {"type": "mount"}]}}).encode()
RUNC_STATE_JSON = json.dumps({
    "id": "c1", "init_process_pid": 7688, "init_process_start": 135209,
    "created": "2024-05-01T10:00:00.000000000Z",
    "cgroup_paths": {"": "/sys/fs/cgroup/k8s.io/c1", "pids": "/sys/fs/cgroup/pids/k8s.io/c1"},
    "config": {"labels": ["bundle=/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1"]},
}).encode()
MOUNTINFO_V2 = (b"24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
                b"28 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n")
MOUNTINFO_V1 = (b"30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
                b"31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
                b"32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd\n"
                b"35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct\n"
                b"36 30 0:32 /docker/abc /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory\n"
                b"37 30 0:33 / /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids\n"
                b"38 30 0:34 / /sys/fs/cgroup/with\\040space rw shared:17 - cgroup cgroup rw,freezer\n")
PROC_CGROUP_V2 = b"0::/k8s.io/c1\n"
PROC_CGROUP_V1 = (b"12:pids:/k8s.io/c1\n11:memory:/docker/abc/k8s.io/c1\n"
                  b"4:cpu,cpuacct:/k8s.io/c1\n1:name=systemd:/k8s.io/c1\n0::/k8s.io/c1\n")
STAT = b"7688 (sh) S 7660 7688 7688 0 -1 4194560 113 0 0 0 0 0 0 0 20 0 1 0 135209 4464640 208 18446744073709551615 1 1 0 0 0 0 0 0 2 0 0 0 17 1 0 0 0 0 0\n"
STAT_ODD_COMM = b"7689 (a) b (c) R 1 7689 7689 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0 0\n"

SEEDS = {
    "fuzz_config_toml": {
        "robust.toml": read("runtime-config/robust.toml"),
        "runsc.toml": read("runtime-config/runsc.toml"),
        "empty.toml": b"",
        "aliases.toml": b'TypeUrl = "x"\nBinaryName = "/usr/bin/runsc"\nRoot = "/r"\nSystemdCgroup = true\nCriuPath = "/c"\n',
        "timeouts.toml": b'log_level = "debug"\n[timeouts]\nkill = "1500us"\nstop_grace = "1m30s"\ncreate = 60000\nstate = "1.5s"\n',
        "runsc_config.toml": b'[runtime]\nbinary = "runsc"\nkind = "runsc"\nroot = "/run/r"\n[runsc_config]\nplatform = "ptrace"\ndebug = false\nn = -3\n',
        "bad_duration.toml": b'[timeouts]\nkill = "ten seconds"\n',
        "bad_type.toml": b'[runtime]\nsystemd_cgroup = "yes"\n',
        "syntax.toml": b"[runtime]\nbinary = \n",
        # regression: the parser's "duplicate key" quoted the key whole
        "duplicate_long_key.toml": (b"k" * 4200 + b" = 1\n") * 2,
        "unknown.toml": b'surprise = 1\n[runtime]\nshiny = true\n[future_table]\nx = 1\n["odd key"]\n',
    },
    "fuzz_options_json": {
        "default.json": opts_json(),
        "runsc.json": RUNSC_OPTS,
        "runc_shim.json": b'{"binary_name":"/usr/local/bin/runc","root":"/run/custom","systemd_cgroup":true,"io_uid":0}',
        "nulls.json": b'{"version":7,"runtime":{"binary":"runc","root":null,"future":[1,{"a":null}]},"timeouts":{"kill":2500,"later":"1s"},"extra":{"x":1.5}}',
        "truncated.json": b'{"runtime":{"bin',
        "array.json": b"[1,2]",
        "big_number.json": b'{"timeouts":{"kill":18446744073709551615}}',
    },
    "fuzz_options_any": {
        "runc.bin": b"\x00" + runc_options(binary_name="/usr/bin/runsc", root="/run/custom",
                                            systemd_cgroup=True, no_pivot_root=True,
                                            no_new_keyring=True, io_uid=1000,
                                            criu_path="/usr/sbin/criu"),
        "runc_google.bin": b"\x01" + runc_options(binary_name="runc", systemd_cgroup=True),
        "runc_empty.bin": b"\x00",
        "runtimeoptions_path.bin": b"\x02" + runtime_options(
            "io.containerd.robust.v1.Config", "/etc/containerd/robust.toml",
            b'[runtime]\nbinary = "runsc"\n[timeouts]\nkill = "3s"\n'),
        "runtimeoptions_body.bin": b"\x03" + runtime_options(
            config_body=b'[runtime]\nbinary = "crun"\n[runsc_config]\nplatform = "ptrace"\n'),
        "runtimeoptions_google.bin": b"\x04" + runtime_options(
            config_body=read("runtime-config/runsc.toml")),
        "unknown_type.bin": b"\x07io.containerd.runhcs.v1.Options" + SEP + b"\x08\x01",
        "empty_url.bin": b"\x05",
    },
    "fuzz_start_input": {
        "bootstrap_runc.bin": bootstrap([("io.containerd.unrelated", b"x"),
                                         ("containerd.runc.v1.Options",
                                          runc_options(binary_name="/usr/bin/runsc",
                                                       systemd_cgroup=True))],
                                        socket_dir="/run/containerd/s"),
        "bootstrap_runtimeoptions.bin": bootstrap([("type.googleapis.com/runtimeoptions.v1.Options",
                                                    runtime_options(config_body=b'[runtime]\nbinary = "runc"\n'))]),
        "bootstrap_minimal.bin": field(1, "c1") + field(2, "default") + field(5, "/a"),
        "any_runc.bin": any_msg("containerd.runc.v1.Options",
                                runc_options(binary_name="/usr/bin/runsc", systemd_cgroup=True)),
        "any_runtimeoptions.bin": any_msg("cri.runtimeoptions.v1.Options",
                                          runtime_options(config_body=b'[timeouts]\nkill = "3s"\n')),
        "any_empty_value.bin": any_msg("containerd.runc.v1.Options", b""),
        "empty_url.bin": b"\x0a\x00",
        "bad_namespace.bin": bootstrap(namespace="../etc"),
    },
    "fuzz_bundle_files": {
        "complete.bin": SEP.join([b"/usr/bin/runc\n", b"4242", opts_json(), SPEC,
                                  b"unix:///run/containerd/s/abc"]),
        "runsc.bin": SEP.join([b"runsc\n", b"77\n", RUNSC_OPTS,
                               b'{"ociVersion":"1.0.2","linux":{"cgroupsPath":"kubepods-pod1.slice:cri-containerd:c1"}}',
                               b"unix://@robust-shim-abc"]),
        "missing.bin": SEP.join([b"\xfe", b"\xfe", b"\xfe", b"\xfe", b"\xfe"]),
        "symlinks_dirs.bin": SEP.join([b"\xfd", b"\xfc", b"\xfd", b"\xfc", b"\xfd"]),
        "corrupt.bin": SEP.join([b"", b"42\x00\x00", b'{"runtime":{"bin', b'{"linux":', b"\xff\xfe"]),
        "odd.bin": SEP.join([b"runc\nrunsc", b"-1", b"[]", b"[]", b"tcp://1.2.3.4:5"]),
        "runc_shim_options.bin": SEP.join([b"/nonexistent/runc", b"1",
                                           b'{"binary_name":"/usr/local/bin/runc","root":"/run/custom","systemd_cgroup":true}',
                                           b"{}", b"unix:///run/x"]),
    },
    "fuzz_runtime_output": {
        "runc_state.json": b'{"ociVersion":"1.0.2","id":"c1","pid":7688,"status":"running","bundle":"/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1","rootfs":"/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1/rootfs","created":"2024-05-01T10:00:00.123456789Z","owner":""}\n',
        "runsc_state.json": b'{"ociVersion":"1.0.2-dev","id":"c1","status":"stopped","pid":0,"bundle":"/b/c1","annotations":{"io.kubernetes.cri.container-type":"sandbox"}}',
        "ps.json": b"[7688,7701,7702]\n",
        "ps_null.json": b"null\n",
        "wait.json": b'{"id":"c1","exitStatus":137}\n',
        "runsc_events_stats.json": b'{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":123456789,"kernel":1000,"user":2000,"percpu":[61728394,61728395]}},"memory":{"cache":4096,"usage":{"limit":9223372036854771712,"usage":10485760,"max":12582912,"failcnt":0},"swap":{"usage":0},"kernel":{"usage":0}},"pids":{"current":3,"limit":0}}}\n',
        "runsc_events_other.json": b'{"type":"oom","id":"c1"}\n',
        "log.json": b'{"level":"info","msg":"starting","time":"2024-05-01T10:00:00Z"}\n{"level":"error","msg":"container \\"c1\\" does not exist","time":"2024-05-01T10:00:00Z"}\nplain text line\n',
        "log_fatal.json": b'{"level":"fatal","msg":"cannot signal container in state stopped"}\n',
        "state_file.json": RUNC_STATE_JSON,
        "runsc_state_file.json": b'{"containerId":"c1","sandbox":{"id":"pod1","pid":4242},"goferPid":4250,"bundleDir":"/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1","status":"running"}',
        # regression: a pid that does not fit an i32 (was read as pid 1)
        "state_file_big_pid.json": b'{"init_process_pid":4294967297,"init_process_start":"99"}',
    },
    "fuzz_ids": {
        "ns.txt": b"\x00k8s.io",
        "ns_default.txt": b"\x00default",
        "container.txt": b"\x010123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "container_seps.txt": b"\x01A1-b2.C3_d4",
        "exec.txt": b"\x02exec-1",
        "dotdot.txt": b"\x01../etc",
        "slash.txt": b"\x02a/b",
        "nul.txt": b"\x01a\x00b",
        "unicode.txt": b"\x01a\xc3\xa9",
        "leading_dash.txt": b"\x00-x",
    },
    "fuzz_duration": {
        "s.txt": b"10s", "ms.txt": b"500ms", "m.txt": b"2m", "mix.txt": b"1m30s",
        "frac.txt": b"1.5s", "us.txt": b"250\xc2\xb5s", "ns.txt": b"1501ns",
        "max.txt": b"24h", "over.txt": b"24h1ns", "ms_int.txt": b"1500",
        "zero.txt": b"0s", "neg.txt": b"-5s", "plus.txt": b"+3s",
        "tiny.txt": b"0.0000000000000000000000001h1s",
    },
    "fuzz_cgroup_files": {
        "v2.bin": SEP.join([PROC_CGROUP_V2, MOUNTINFO_V2, b"/k8s.io/c1", STAT,
                            b"anon 1024\nfile 4096\nkernel_stack 0\noom_kill 1\n"]),
        "v1.bin": SEP.join([PROC_CGROUP_V1, MOUNTINFO_V1, b"/docker/abc/k8s.io/c1", STAT_ODD_COMM,
                            b"cache 0\nrss 4096\nhierarchical_memory_limit 9223372036854771712\n"]),
        "relative.bin": SEP.join([b"0::/system.slice/containerd.service\n", MOUNTINFO_V2,
                                  b"k8s.io/c1", STAT, b"max\n"]),
        "systemd.bin": SEP.join([b"0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-c1.scope\n",
                                 MOUNTINFO_V2, b"kubepods-pod1.slice:cri-containerd:c1", STAT, b"-1\n"]),
        "partitions.bin": SEP.join([b"", b"", b"", b"",
                                    b"major minor  #blocks  name\n\n   8        0  488386584 sda\n 259        1 1000 nvme0n1p1\n"]),
        "rdma.bin": SEP.join([b"", b"", b"", b"", b"mlx4_0 hca_handle=2 hca_object=2000\nocrdma1 hca_handle=3 hca_object=max\n"]),
        "hugepages.bin": SEP.join([b"", b"", b"", b"", b"hugepages-1048576kB"]),
        # regression: an own cgroup that climbs out of the cgroup namespace
        "relative_dotdot.bin": SEP.join([b"12:pids:/../../x\n0::/../../x\n", MOUNTINFO_V1 + MOUNTINFO_V2,
                                         b"c1", STAT, b""]),
        "single_line.bin": SEP.join([b"0::/a", b"28 24 0:26 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw",
                                     b"/a", b"", b""]),
    },
}


def main():
    for target, files in SEEDS.items():
        d = os.path.join(CORPUS, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    total = sum(len(f) for t in SEEDS.values() for f in t.values())
    n = sum(len(t) for t in SEEDS.values())
    print(f"wrote {n} seeds ({total} bytes) for {len(SEEDS)} targets under {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
