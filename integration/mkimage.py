#!/usr/bin/env python3
"""Build the integration test images as OCI layout tars, with no network.

Usage: mkimage.py OUT_DIR [--busybox PATH] [--if-stale]

Writes OUT_DIR/busybox.tar and OUT_DIR/pause.tar (importable with
`ctr images import`). The rootfs is /bin/busybox (busybox-static) with one
symlink per applet, /etc/passwd, /etc/group and /tmp. The output is
deterministic: the same busybox binary gives the same digests.

Images:
  docker.io/library/busybox:robust  Cmd ["sh"]
  localhost/robust/pause:1          a tiny pause: sleeps, reaps, exits 0 on TERM/INT
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile

BUSYBOX_REF = "docker.io/library/busybox:robust"
PAUSE_REF = "localhost/robust/pause:1"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_INDEX = "application/vnd.oci.image.index.v1+json"

EPOCH = 0  # fixed mtime: reproducible layers


def goarch():
    m = platform.machine()
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
        "i686": "386",
    }.get(m, m)


def applets(busybox):
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
    names = sorted({line.strip() for line in out.splitlines() if line.strip()})
    if "sh" not in names:
        sys.exit(f"mkimage: {busybox} --list has no 'sh' applet: is it busybox-static?")
    return [n for n in names if "/" not in n and n != "busybox"]


def tar_add(tf, name, typ, mode, data=b"", linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = mode
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.mtime = EPOCH
    if typ == tarfile.SYMTYPE:
        ti.linkname = linkname
        tf.addfile(ti)
    elif typ == tarfile.DIRTYPE:
        tf.addfile(ti)
    else:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))


def build_layer(busybox):
    """Returns (uncompressed tar bytes, gzipped bytes)."""
    with open(busybox, "rb") as f:
        bb = f.read()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d, mode in [
            ("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("home", 0o755),
            ("proc", 0o555), ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777),
            ("usr", 0o755), ("usr/bin", 0o755), ("usr/sbin", 0o755), ("sbin", 0o755),
            ("var", 0o755), ("var/run", 0o755), ("var/tmp", 0o1777),
        ]:
            tar_add(tf, d, tarfile.DIRTYPE, mode)
        tar_add(tf, "bin/busybox", tarfile.REGTYPE, 0o755, bb)
        for name in applets(busybox):
            tar_add(tf, "bin/" + name, tarfile.SYMTYPE, 0o777, linkname="busybox")
        tar_add(tf, "etc/passwd", tarfile.REGTYPE, 0o644,
                b"root:x:0:0:root:/root:/bin/sh\n"
                b"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        tar_add(tf, "etc/group", tarfile.REGTYPE, 0o644,
                b"root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n")
        tar_add(tf, "etc/hostname", tarfile.REGTYPE, 0o644, b"robust\n")
    raw_bytes = raw.getvalue()
    gz = io.BytesIO()
    # mtime=0 and no file name: the gzip stream is reproducible too
    with gzip.GzipFile(fileobj=gz, mode="wb", compresslevel=6, mtime=0, filename="") as g:
        g.write(raw_bytes)
    return raw_bytes, gz.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def jbytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_oci_tar(path, ref, layer_raw, layer_gz, cfg_extra):
    arch = goarch()
    config = {
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": dict(cfg_extra),
        "rootfs": {"type": "layers", "diff_ids": [sha(layer_raw)]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": "integration/mkimage.py"}],
    }
    config_b = jbytes(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha(config_b), "size": len(config_b)},
        "layers": [{"mediaType": MT_LAYER, "digest": sha(layer_gz), "size": len(layer_gz)}],
    }
    manifest_b = jbytes(manifest)
    tag = ref.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": sha(manifest_b),
            "size": len(manifest_b),
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {
                "io.containerd.image.name": ref,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }
    blobs = {sha(b): b for b in (config_b, manifest_b, layer_gz)}
    tmp = path + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tar_add(tf, "oci-layout", tarfile.REGTYPE, 0o644, jbytes({"imageLayoutVersion": "1.0.0"}))
        tar_add(tf, "index.json", tarfile.REGTYPE, 0o644, jbytes(index))
        tar_add(tf, "blobs", tarfile.DIRTYPE, 0o755)
        tar_add(tf, "blobs/sha256", tarfile.DIRTYPE, 0o755)
        for digest in sorted(blobs):
            tar_add(tf, "blobs/sha256/" + digest.split(":", 1)[1], tarfile.REGTYPE, 0o644,
                    blobs[digest])
    os.replace(tmp, path)
    return sha(manifest_b)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--busybox", default="/bin/busybox")
    ap.add_argument("--if-stale", action="store_true",
                    help="do nothing when both tars are newer than busybox and this script")
    args = ap.parse_args()
    if not os.access(args.busybox, os.X_OK):
        sys.exit(f"mkimage: {args.busybox} is not executable (install busybox-static)")
    outs = [os.path.join(args.out_dir, n) for n in ("busybox.tar", "pause.tar")]
    if args.if_stale and all(os.path.exists(o) for o in outs):
        newest_input = max(os.path.getmtime(args.busybox), os.path.getmtime(__file__))
        if all(os.path.getmtime(o) >= newest_input for o in outs):
            print(f"mkimage: {args.out_dir}/busybox.tar and pause.tar are up to date")
            return
    os.makedirs(args.out_dir, exist_ok=True)
    raw, gz = build_layer(args.busybox)
    d1 = write_oci_tar(os.path.join(args.out_dir, "busybox.tar"), BUSYBOX_REF, raw, gz,
                       {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"})
    d2 = write_oci_tar(os.path.join(args.out_dir, "pause.tar"), PAUSE_REF, raw, gz,
                       {"Env": [PATH_ENV], "Entrypoint": ["/bin/sh", "-c", PAUSE_SCRIPT],
                        "WorkingDir": "/", "StopSignal": "SIGTERM"})
    print(f"mkimage: {BUSYBOX_REF} {d1} -> {args.out_dir}/busybox.tar")
    print(f"mkimage: {PAUSE_REF} {d2} -> {args.out_dir}/pause.tar")


if __name__ == "__main__":
    main()
