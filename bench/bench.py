#!/usr/bin/env python3
"""filesync benchmark driver (run it through bench/run, which installs the peers and builds).

Every scenario runs filesync and its peers in the same run, on the same generated trees and in the
same state (a peer's no-change run follows its own complete sync), through hyperfine: one warm-up,
then N timed runs; each command is wrapped in /usr/bin/time for its peak RSS. Page caches are warm
(dropping caches needs privileges a benchmark should not assume), so every figure is a warm-cache
figure. Prints one markdown table, the scaling table, the targets of issue 4, the micro-benchmarks
and a profile of the no-change pass; writes results.md and results.json to the scratch dir, and
(with gnuplot) scaling.svg and latency.svg charts beside them.
"""

import argparse
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SEED = 20241124
KIB, MIB, GIB = 1024, 1024 * 1024, 1024 * 1024 * 1024
BWLIMIT = 2 * MIB  # the bwlimit scenario's limit (bytes/s)
POOL_SIZE = 8 * MIB
BASE_MTIME = 1_600_000_000  # fixed mtimes: the trees are identical from run to run
HERE = Path(__file__).resolve().parent


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def out(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


# ---------------------------------------------------------------- deterministic trees

_POOL = None


def pool():
    global _POOL
    if _POOL is None:
        _POOL = random.Random(SEED).randbytes(POOL_SIZE)
    return _POOL


def content(key, size):
    """Bytes of a file: a 32-byte digest of `key` (so no two files share content), then slices of
    a seeded random pool at seeded offsets."""
    if size == 0:
        return b""
    rng = random.Random(f"{SEED}/{key}")
    parts, left, chunk = [], size, 0
    while left > 0:
        head = hashlib.sha256(f"{key}#{chunk}".encode()).digest()
        body = min(left, MIB) - len(head)
        if body < 0:
            parts.append(head[:left])
            break
        off = rng.randrange(POOL_SIZE - body + 1)
        parts.append(head + pool()[off:off + body])
        left -= len(head) + body
        chunk += 1
    return b"".join(parts)


def write_file(path, data, mtime):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))


def small_layout(files, per_folder=100):
    """[(relative path, size)] of the `small` tree: `files` files of 1-16 KiB, 100 per folder."""
    rng = random.Random(SEED)
    folders = files // per_folder
    width = len(str(folders - 1))
    return [(f"d{i // per_folder:0{width}d}/f{i:06d}.bin", rng.randint(KIB, 16 * KIB)) for i in range(files)]


def gen_small(dest, files):
    for i, (rel, size) in enumerate(small_layout(files)):
        p = dest / rel
        if i % 100 == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
        write_file(p, content(rel, size), BASE_MTIME + i)


def gen_mixed(dest, spec):
    rng = random.Random(SEED + 2)
    for i in range(spec["small"]):
        rel = f"small/s{i // 100:03d}/m{i:05d}.bin"
        p = dest / rel
        if i % 100 == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(KIB, 16 * KIB)
        write_file(p, content(rel, size), BASE_MTIME + i)
    (dest / "big").mkdir(parents=True, exist_ok=True)
    for i in range(spec["big_count"]):
        rel = f"big/b{i:02d}.bin"
        write_file(dest / rel, content(rel, spec["big_size"]), BASE_MTIME + i)
    for i in range(spec["huge_count"]):
        rel = f"h{i}.bin"
        write_file(dest / rel, content(rel, spec["huge_size"]), BASE_MTIME + i)


def gen_empty(dest, files, per_folder=1000):
    dest.mkdir(parents=True, exist_ok=True)
    for d in range(max(1, (files + per_folder - 1) // per_folder)):
        sub = dest / f"e{d:04d}"
        sub.mkdir(exist_ok=True)
        for f in range(min(per_folder, files - d * per_folder)):
            os.close(os.open(sub / f"{f:04d}", os.O_WRONLY | os.O_CREAT, 0o644))
        os.utime(sub, ns=(BASE_MTIME * 10**9, BASE_MTIME * 10**9))


def gen_big(path, size):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in range(0, size, 64 * MIB):
            data = content(f"big/{chunk}", min(64 * MIB, size - chunk))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def ensure_tree(trees, name, spec, generate):
    """Generates a tree once per spec; a marker beside it (not inside) records the spec."""
    path, marker = trees / name, trees / f"{name}.spec"
    want = json.dumps(spec, sort_keys=True)
    if path.exists() and marker.exists() and marker.read_text() == want:
        return path
    log(f"generating {name} {want}")
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    marker.unlink(missing_ok=True)
    generate(path)
    run(["sync", "-f", str(trees)])
    marker.write_text(want)
    return path


# ---------------------------------------------------------------- the mutation of `small`

def mutation(files, count):
    """The `mutate` change set on `small`: `count` files modified, added, deleted and renamed
    (half within their folder, half into another), and the last folder (100 files) renamed."""
    layout = small_layout(files)
    folders = sorted({rel.split("/")[0] for rel, _ in layout})
    moved_folder = folders[-1]
    candidates = [(rel, size) for rel, size in layout if not rel.startswith(moved_folder + "/")]
    rng = random.Random(SEED + 1)
    picked = rng.sample(candidates, 3 * count)
    modified, deleted, renamed = picked[:count], picked[count:2 * count], picked[2 * count:]
    renames = []
    for i, (rel, size) in enumerate(renamed):
        folder, name = rel.split("/")
        target_folder = folder if i % 2 == 0 else rng.choice(folders[:-1])
        renames.append((rel, f"{target_folder}/{name[:-4]}-renamed.bin", size))
    added = [(f"{rng.choice(folders[:-1])}/new{i:05d}.bin", rng.randint(KIB, 16 * KIB)) for i in range(count)]
    return {
        "modified": modified, "deleted": deleted, "renames": renames, "added": added,
        "folder": (moved_folder, moved_folder + "-renamed"),
        "changed_bytes": sum(s for _, s in modified) + sum(s for _, s in added),
    }


def original_mtime(files):
    return {rel: BASE_MTIME + i for i, (rel, _) in enumerate(small_layout(files))}


def apply_mutation(src, m, folder=True):
    for rel, size in m["modified"]:
        write_file(src / rel, content(rel + "#modified", size), BASE_MTIME + 10_000_000)
    for rel, size in m["added"]:
        write_file(src / rel, content(rel, size), BASE_MTIME + 10_000_001)
    for rel, _ in m["deleted"]:
        (src / rel).unlink()
    for old, new, _ in m["renames"]:
        os.rename(src / old, src / new)
    if folder:
        os.rename(src / m["folder"][0], src / m["folder"][1])


def revert_mutation(src, m, files):
    mtimes = original_mtime(files)
    os.rename(src / m["folder"][1], src / m["folder"][0])
    for old, new, _ in m["renames"]:
        os.rename(src / new, src / old)
    for rel, size in m["deleted"]:
        write_file(src / rel, content(rel, size), mtimes[rel])
    for rel, _ in m["added"]:
        (src / rel).unlink()
    for rel, size in m["modified"]:
        write_file(src / rel, content(rel, size), mtimes[rel])


# ---------------------------------------------------------------- measuring

class Measure:
    def __init__(self, times, rss_kib=None, note=""):
        self.times = sorted(times)
        self.rss_kib = sorted(rss_kib or [])
        self.note = note

    @property
    def median(self):
        t, n = self.times, len(self.times)
        return t[n // 2] if n % 2 else (t[n // 2 - 1] + t[n // 2]) / 2

    @property
    def rss(self):  # median peak RSS in bytes
        r, n = self.rss_kib, len(self.rss_kib)
        if not n:
            return None
        return 1024 * (r[n // 2] if n % 2 else (r[n // 2 - 1] + r[n // 2]) / 2)

    def json(self):
        return {"median_s": self.median, "min_s": self.times[0], "max_s": self.times[-1],
                "runs": len(self.times), "peak_rss_bytes": self.rss, "note": self.note}


class Bench:
    def __init__(self, args):
        self.args = args
        self.fs = str(Path(args.filesync).resolve())
        self.dir = Path(args.dir).resolve()
        self.trees = self.dir / "trees"
        self.work = self.dir / "run"
        self.q = args.quick
        self.runs = args.runs or (3 if self.q else 5)
        self.workers = args.workers
        self.rows = []      # (section, scenario, tool, Measure, floor Measure|None, vs filesync Measure|None)
        self.results = {}   # name -> Measure
        self.facts = {}     # checks and derived figures
        self.scaling = []
        self.profile = ""
        self.micro = []
        self.dbx_token = secrets.token_hex(16)  # the emulator's static token; never printed

    # -- helpers
    def hook(self, *words):
        return " ".join([sys.executable, str(HERE / "bench.py"), "--dir", str(self.dir),
                         "--quick" if self.q else "--full", "hook", *words])

    def hf(self, name, cmd, runs=None, prepare=None, warmup=1, note=""):
        """Times `cmd` with hyperfine (no shell), peak RSS from /usr/bin/time per run."""
        runs = runs or self.runs
        rss_file = self.work / "rss" / f"{name}.txt"
        js = self.work / "hyperfine" / f"{name}.json"
        rss_file.parent.mkdir(parents=True, exist_ok=True)
        js.parent.mkdir(parents=True, exist_ok=True)
        rss_file.unlink(missing_ok=True)
        wrapped = f"/usr/bin/time -f %M -a -o {rss_file} {cmd}"
        argv = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(runs),
                "--export-json", str(js)]
        if prepare:
            argv += ["--prepare", prepare]
        argv.append(wrapped)
        log(f"{name}: {cmd[:150]}")
        run(argv, stdout=subprocess.DEVNULL)
        times = json.loads(js.read_text())["results"][0]["times"]
        rss = [int(line) for line in rss_file.read_text().split() if line.strip().isdigit()][-runs:]
        m = Measure(times, rss, note)
        self.results[name] = m
        log(f"{name}: median {m.median:.3f} s, min {m.times[0]:.3f}, max {m.times[-1]:.3f}, "
            f"peak RSS {fmt_bytes(m.rss)}")
        return m

    def once(self, name, argv, note=""):
        """One run outside hyperfine (setup steps): wall time, and peak RSS from /usr/bin/time (not
        from our own wait4: on Linux a child's maxrss starts from this Python process's RSS)."""
        log(f"{name}: {' '.join(argv)[:150]}")
        rss_file = self.work / "rss" / f"{name}.txt"
        rss_file.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{argv} exited {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
        m = Measure([dt], [int(rss_file.read_text().split()[-1])], note)
        self.results[name] = m
        log(f"{name}: {dt:.2f} s, peak RSS {fmt_bytes(m.rss)}")
        return m

    def config(self, name, src, workers=None):
        cloud, state = self.work / f"fs-{name}-cloud", self.work / f"fs-{name}-state"
        cfg = self.work / "cfg" / f"{name}.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(f'client_sync_dirs = ["{src}"]\ncloud_root = "/bench"\n'
                       f'local_cloud_dir = "{cloud}"\nstate_dir = "{state}"\n'
                       f'workers = {workers or self.workers}\npoll_interval = 1\n')
        return cfg, cloud, state

    def fs_cmd(self, cfg, *words):
        return " ".join([self.fs, "--config", str(cfg), *words])

    def last_pass(self, cfg):
        status = json.loads(out([self.fs, "--config", str(cfg), "status", "--json"]))
        lp = status.get("last_pass") or {}
        root = (lp.get("roots") or [{}])[0]
        return lp, root

    def rclone(self, src, dst, *extra):
        return f"rclone sync {src} {dst} --transfers={self.workers} -q {' '.join(extra)}".strip()

    def daemon(self, name, cfg, state, passes):
        """Runs `filesync run` (poll_interval 1 s) for 1 + 1 + `passes` passes and reads each pass's
        duration (ms) from the status snapshot the daemon writes after every pass. Pass 1 loads
        the state from disk, pass 2 is the warm-up; the rest are the daemon-already-running case."""
        snapshot = state / "status.json"
        snapshot.unlink(missing_ok=True)
        rss_file = self.work / "rss" / f"{name}.txt"
        rss_file.parent.mkdir(parents=True, exist_ok=True)
        log(f"{name}: filesync run, {passes + 2} passes")
        errf = open(self.work / f"{name}.daemon.log", "wb")
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), self.fs, "--config", str(cfg), "run"],
                             stdout=errf, stderr=errf)
        seen = {}
        deadline = time.time() + 900
        try:
            while len(seen) < passes + 2 and time.time() < deadline and p.poll() is None:
                time.sleep(0.02)
                try:
                    lp = json.loads(snapshot.read_text())["last_pass"]
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if lp and lp["started_unix_ms"] not in seen:
                    seen[lp["started_unix_ms"]] = lp
        finally:
            # SIGTERM to filesync itself (the child of /usr/bin/time): it finishes and exits 0.
            children = Path(f"/proc/{p.pid}/task/{p.pid}/children")
            kids = children.read_text().split() if children.exists() else []
            for kid in kids:
                os.kill(int(kid), signal.SIGTERM)
            p.wait(timeout=600)
            errf.close()
        if len(seen) < passes + 2 or p.returncode != 0:
            raise RuntimeError(f"daemon {name}: {len(seen)} passes, exit {p.returncode}")
        maxrss = int(rss_file.read_text().split()[-1])
        order = [seen[k] for k in sorted(seen)]
        steady = order[2:]
        hashed = sum(lp["bytes_hashed"] for lp in steady)
        m = Measure([lp["duration_ms"] / 1000 for lp in steady], [maxrss],
                    f"in-process pass time from the daemon's status snapshot (ms); bytes hashed {hashed}")
        self.results[name] = m
        self.results[name + "-first"] = Measure([order[0]["duration_ms"] / 1000], [maxrss])
        log(f"{name}: median {m.median:.3f} s over {len(steady)} passes (first pass "
            f"{order[0]['duration_ms']} ms), peak RSS {fmt_bytes(m.rss)}, hashed {hashed} B")
        return m

    SECTIONS = ("no-change", "mutate", "initial", "hash", "dropbox")

    def add(self, section, scenario, tool, name, floor=None, ref=None):
        self.rows.append((section, scenario, tool, name, floor, ref))
        self.rows.sort(key=lambda row: self.SECTIONS.index(row[0]))  # stable: keeps order within a section

    # -- scenarios
    def sizes(self):
        q = self.q
        return {
            "small": 10_000 if q else 100_000,
            "mutate": 10 if q else 100,
            "mixed": {"small": 1_000 if q else 10_000, "big_count": 2 if q else 20, "big_size": 8 * MIB,
                      "huge_count": 2, "huge_size": (20 if q else 200) * MIB},
            "big": (128 if q else 1024) * MIB,
            "dropbox": 2_000 if q else 10_000,
            "scaling": [10_000, 100_000] + ([] if q or self.args.skip_1m else [1_000_000]),
        }

    def setup(self):
        self.trees.mkdir(parents=True, exist_ok=True)
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        sz = self.sizes()
        small_spec = {"files": sz["small"], "seed": SEED}
        mutated = self.trees / "small.mutated"
        if mutated.exists() and (self.trees / "small").exists():
            log("reverting a mutation left by an interrupted run")
            revert_mutation(self.trees / "small", mutation(sz["small"], sz["mutate"]), sz["small"])
            mutated.unlink()
        self.small = ensure_tree(self.trees, "small", small_spec, lambda p: gen_small(p, sz["small"]))
        self.mixed = ensure_tree(self.trees, "mixed", {**sz["mixed"], "seed": SEED},
                                 lambda p: gen_mixed(p, sz["mixed"]))
        self.big = ensure_tree(self.trees, "big.bin", {"size": sz["big"], "seed": SEED},
                               lambda p: gen_big(p, sz["big"]))
        self.empty = {}
        for n in [10] + sz["scaling"]:
            self.empty[n] = ensure_tree(self.trees, f"empty{n}", {"files": n}, lambda p, n=n: gen_empty(p, n))
        ctx = {"small": sz["small"], "mutate": sz["mutate"], "workers": self.workers, "fs": self.fs}
        (self.dir / "ctx.json").write_text(json.dumps(ctx))

    def small_init(self):
        cfg, cloud, state = self.config("small", self.small)
        self.cfg_small, self.state_small = cfg, state
        # The initial syncs put every tool in the same state (single runs, for information).
        self.once("init-small-filesync", [self.fs, "--config", str(cfg), "sync"])
        self.once("init-small-rclone", self.rclone(self.small, self.work / "rclone-small").split())
        self.once("init-small-rsync", ["rsync", "-a", "--delete", f"{self.small}/", f"{self.work / 'rsync-small'}/"])

    def small_nochange(self):
        sz = self.sizes()
        n = sz["small"]
        cfg, state = self.cfg_small, self.state_small
        self.hf("find-small", f"find {self.small} -type f -printf '%s %T@ %i\\n'")
        self.hf("nochange-filesync", self.fs_cmd(cfg, "sync"))
        lp, root = self.last_pass(cfg)
        self.facts["nochange_bytes_hashed"] = lp.get("bytes_hashed")
        self.facts["nochange_actions"] = root.get("planned")
        self.hf("nochange-filesync-plan", self.fs_cmd(cfg, "plan"))
        self.daemon("nochange-daemon", cfg, state, self.runs)
        self.hf("verify-filesync", self.fs_cmd(cfg, "sync", "--verify"))
        lp, root = self.last_pass(cfg)
        self.facts["verify_bytes_hashed"] = lp.get("bytes_hashed")
        self.facts["verify_actions"] = root.get("planned")
        self.hf("nochange-rclone", self.rclone(self.small, self.work / "rclone-small"))
        self.hf("nochange-rsync", f"rsync -a --delete {self.small}/ {self.work / 'rsync-small'}/")
        f = "find-small"
        s = f"no-change pass, small ({n:,} files)"
        self.add("no-change", s, "floor: find -printf (1 stat/file, 1 thread)", f)
        self.add("no-change", s, "filesync daemon pass (already running)", "nochange-daemon", f)
        self.add("no-change", s, "filesync sync (fresh process, state from disk)", "nochange-filesync", f)
        self.add("no-change", s, "filesync plan (fresh process, dry run)", "nochange-filesync-plan", f)
        self.add("no-change", s, "filesync sync --verify (cloud walked too)", "verify-filesync", f)
        self.add("no-change", s, "rclone sync", "nochange-rclone", f, "nochange-filesync")
        self.add("no-change", s, "rsync -a --delete", "nochange-rsync", f, "nochange-filesync")
        self.add("no-change", s, "(rclone vs filesync daemon)", "nochange-rclone", None, "nochange-daemon")
        self.add("no-change", s, "(rsync vs filesync --verify)", "nochange-rsync", None, "verify-filesync")
        self.add("no-change", s, "(rclone vs filesync --verify)", "nochange-rclone", None, "verify-filesync")

    def mutate(self):
        sz = self.sizes()
        m = mutation(sz["small"], sz["mutate"])
        self.facts["mutate_changed_bytes"] = m["changed_bytes"]
        tools = {
            "filesync": self.fs_cmd(self.cfg_small, "sync"),
            "rclone": self.rclone(self.small, self.work / "rclone-small", "--track-renames"),
            "rsync": f"rsync -a --delete {self.small}/ {self.work / 'rsync-small'}/",
        }
        for tool, cmd in tools.items():
            (self.dir / f"mutate-{tool}.cmd").write_text(cmd)
            self.hf(f"mutate-{tool}", cmd, prepare=self.hook("mutate-prepare", tool))
            if tool == "filesync":
                lp, root = self.last_pass(self.cfg_small)
                self.facts["mutate_filesync"] = {k: root.get(k) for k in
                                                 ("uploaded", "bytes_uploaded", "moved", "deleted", "created")}
                self.facts["mutate_filesync"]["bytes_hashed"] = lp.get("bytes_hashed")
        # Floor: the stat walk plus copying the changed bytes (the tree is mutated now).
        changed = [str(self.small / rel) for rel, _ in m["modified"] + m["added"]]
        dest = self.work / "floor-copy"
        self.hf("copy-changed", f"cp -t {dest} " + " ".join(changed), prepare=self.hook("fresh-dir", str(dest)))
        self.hf("find-small-mutated", f"find {self.small} -type f -printf '%s %T@ %i\\n'")
        fm = Measure([self.results["find-small-mutated"].times[i] + self.results["copy-changed"].times[i]
                      for i in range(self.runs)], [], "sum of the two")
        self.results["floor-mutate"] = fm
        # Back to the original tree, every tool in sync with it.
        revert_mutation(self.small, m, sz["small"])
        (self.trees / "small.mutated").unlink(missing_ok=True)
        for cmd in tools.values():
            run(cmd.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s = (f"mutate pass on small ({sz['mutate']} modified/added/deleted/renamed + 1 folder of 100 renamed; "
             f"{m['changed_bytes'] / MIB:.1f} MiB changed)")
        self.add("mutate", s, "floor: find + cp of the changed files", "floor-mutate")
        self.add("mutate", s, "filesync sync", "mutate-filesync", "floor-mutate")
        self.add("mutate", s, "rclone sync --track-renames", "mutate-rclone", "floor-mutate", "mutate-filesync")
        self.add("mutate", s, "rsync -a --delete", "mutate-rsync", "floor-mutate", "mutate-filesync")

    def mixed_initial(self):
        sz = self.sizes()["mixed"]
        cfg, cloud, state = self.config("mixed", self.mixed)
        self.cfg_mixed, self.state_mixed = cfg, state
        fresh = lambda *dirs: self.hook("fresh", *map(str, dirs))
        self.hf("cat-mixed", f"find {self.mixed} -type f -exec cat {{}} +")
        cp_dst = self.work / "cp-mixed"
        self.hf("initial-cp", f"cp -a {self.mixed} {cp_dst}", prepare=fresh(cp_dst))
        self.hf("initial-cp-sync", f"sh -c 'cp -a {self.mixed} {cp_dst} && sync -f {cp_dst}'", prepare=fresh(cp_dst))
        self.hf("initial-rsync", f"rsync -a --delete {self.mixed}/ {self.work / 'rsync-mixed'}/",
                prepare=fresh(self.work / "rsync-mixed"))
        self.hf("initial-rclone", self.rclone(self.mixed, self.work / "rclone-mixed"),
                prepare=fresh(self.work / "rclone-mixed"))
        self.hf("initial-filesync", self.fs_cmd(cfg, "sync"), prepare=fresh(cloud, state))
        lp, root = self.last_pass(cfg)
        self.facts["initial_filesync"] = {"uploaded": root.get("uploaded"), "bytes_uploaded": root.get("bytes_uploaded"),
                                          "bytes_hashed": lp.get("bytes_hashed")}
        diff = subprocess.run(["diff", "-rq", str(self.mixed), str(cloud / "bench" / "mixed")],
                              capture_output=True, text=True)
        self.facts["initial_filesync_mirror_identical"] = diff.returncode == 0
        total = sum(p.stat().st_size for p in self.mixed.rglob("*") if p.is_file())
        self.facts["mixed_bytes"] = total
        s = (f"initial sync of mixed ({sz['small']:,} small + {sz['big_count']} x 8 MiB + {sz['huge_count']} x "
             f"{sz['huge_size'] // MIB} MiB = {total / MIB:.0f} MiB) to a local folder")
        self.add("initial", s, "floor: cat of the tree (read only)", "cat-mixed")
        self.add("initial", s, "cp -a (no fsync)", "initial-cp", "initial-cp")
        self.add("initial", s, "cp -a && sync -f (durable)", "initial-cp-sync", "initial-cp", "initial-filesync")
        self.add("initial", s, "filesync sync (atomic renames, syncfs per batch)", "initial-filesync", "initial-cp")
        self.add("initial", s, "rclone sync", "initial-rclone", "initial-cp", "initial-filesync")
        self.add("initial", s, "rsync -a --delete", "initial-rsync", "initial-cp", "initial-filesync")

    def openssl_speed(self):
        """Single-core SHA-256 rate in bytes/s, wall clock (-elapsed: by default `openssl speed`
        divides by user CPU time, which on a busy machine overstates what one core delivers in
        real time, while every other figure here is wall-clock), and the CPU-time figure."""
        secs = "1" if self.q else "3"
        rates = {}
        for flag in ("-elapsed", None):
            argv = ["openssl", "speed"] + ([flag] if flag else []) + \
                ["-evp", "sha256", "-bytes", str(4 * MIB), "-seconds", secs]
            text = out(argv)
            rates[flag or "cpu"] = float(re.search(r"^sha256\s+([\d.]+)k", text, re.M).group(1)) * 1000
        return rates["-elapsed"], rates["cpu"]

    def hashing(self):
        big = self.big
        size = big.stat().st_size
        # openssl before and after filesync (3 + 3 runs), so both see the same load.
        speeds, cpu_speeds = [], []
        for _ in range(3):
            wall, cpu = self.openssl_speed()
            speeds.append(wall)
            cpu_speeds.append(cpu)
        self.hf("hash-filesync", f"{self.fs} hash {big}")
        for _ in range(3):
            wall, cpu = self.openssl_speed()
            speeds.append(wall)
            cpu_speeds.append(cpu)
        speeds.sort()
        cpu_speeds.sort()
        median = (speeds[2] + speeds[3]) / 2
        # As a time for the file's size, so it sits in the table like the other floors.
        self.results["openssl"] = Measure([size / s for s in speeds], [],
                                          f"openssl speed -elapsed -evp sha256 -bytes 4194304, 1 core, 3 runs "
                                          f"before and 3 after filesync hash: median {median / 1e9:.2f} GB/s")
        self.facts["openssl_Bps"] = median
        self.facts["openssl_runs_Bps"] = speeds
        self.facts["openssl_cpu_time_Bps"] = cpu_speeds
        log(f"openssl sha256 (wall clock): {', '.join(f'{x / 1e9:.2f}' for x in speeds)} GB/s; by CPU time "
            f"{', '.join(f'{x / 1e9:.2f}' for x in cpu_speeds)} GB/s")
        self.hf("hash-rclone", f"rclone hashsum dropbox {big} -q")
        self.hf("hash-sha256sum", f"sha256sum {big}")
        s = f"content hash of one {size / MIB:.0f} MiB file (page cache)"
        self.add("hash", s, "floor: openssl speed -elapsed -evp sha256 (1 core, wall clock)", "openssl")
        self.add("hash", s, "filesync hash", "hash-filesync", "openssl")
        self.add("hash", s, "rclone hashsum dropbox", "hash-rclone", "openssl", "hash-filesync")
        self.add("hash", s, "sha256sum (plain SHA-256)", "hash-sha256sum", "openssl", "hash-filesync")

        # Hashing many files: every file of `mixed` touched (new mtime, same content), so a pass
        # must re-hash all of them to learn that nothing needs uploading.
        for w in (1, 2):
            cfg = self.work / "cfg" / f"mixed-w{w}.toml"
            cfg.write_text(self.cfg_mixed.read_text().replace(f"workers = {self.workers}", f"workers = {w}"))
            self.hf(f"rehash-w{w}", self.fs_cmd(cfg, "sync"), prepare=self.hook("touch", str(self.mixed)))
            lp, root = self.last_pass(cfg)
            self.facts[f"rehash_w{w}"] = {"bytes_hashed": lp.get("bytes_hashed"), "uploaded": root.get("uploaded")}
        # The 1-worker pass held to one core (taskset): what one core does alone, reading and
        # hashing; the baseline of "uses every core" (with both cores, the blocks of files over
        # 4 MiB are hashed on both even with 1 worker).
        cfg1 = self.work / "cfg" / "mixed-w1.toml"
        self.hf("rehash-w1-1core", f"taskset -c 0 {self.fs_cmd(cfg1, 'sync')}",
                prepare=self.hook("touch", str(self.mixed)))
        # The same pass with nothing touched: its fixed costs (start, scan, state), for the
        # hashing-only speed-up.
        self.hf("rehash-none", self.fs_cmd(self.cfg_mixed, "sync"))
        self.hf("rehash-rclone", f"rclone hashsum dropbox {self.mixed} -q --checkers=2")
        total = self.facts["mixed_bytes"]
        self.results["openssl-2cores"] = Measure([total / (2 * s) for s in self.facts["openssl_runs_Bps"]], [],
                                                 "mixed's bytes at 2 x the single-core openssl rate")
        s = f"hashing many files: all of mixed touched, content unchanged ({total / MIB:.0f} MiB re-hashed)"
        self.add("hash", s, "floor: openssl rate x 2 cores", "openssl-2cores")
        self.add("hash", s, "filesync sync, workers = 1, one core (taskset -c 0)", "rehash-w1-1core", "openssl-2cores")
        self.add("hash", s, "filesync sync, workers = 1", "rehash-w1", "openssl-2cores")
        self.add("hash", s, "filesync sync, workers = 2", "rehash-w2", "openssl-2cores")
        self.add("hash", s, "filesync sync, nothing touched (fixed costs)", "rehash-none")
        self.add("hash", s, "rclone hashsum dropbox --checkers=2", "rehash-rclone", "openssl-2cores", "rehash-w2")

    # -- the Dropbox path (target 7)
    def emulator(self, name):
        """Starts the Release emulator on a free loopback port with a fresh data dir; returns
        (process, url). A random static token: the config that holds it is mode 0600 and the
        token is never printed. --strict-arg-header keeps filesync's header escaping checked."""
        data = self.work / f"{name}-data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        log_file = open(self.work / f"{name}.log", "wb")
        p = subprocess.Popen([self.args.emulator, "--listen", "127.0.0.1:0", "--data", str(data),
                              "--token", self.dbx_token, "--strict-arg-header"],
                             stdout=subprocess.PIPE, stderr=log_file)
        log_file.close()
        line = p.stdout.readline().decode().split()
        if len(line) < 3 or line[0] != "listening":
            p.kill()
            raise RuntimeError(f"emulator {name} did not start (see {self.work / name}.log)")
        return p, line[2]

    @staticmethod
    def stop_emulator(p):
        p.terminate()
        p.wait(timeout=60)
        p.stdout.close()

    @staticmethod
    def emulator_hwm(p):
        m = re.search(r"VmHWM:\s*(\d+) kB", Path(f"/proc/{p.pid}/status").read_text())
        return int(m.group(1)) * 1024 if m else None

    def counters(self, url, reset=False):
        import urllib.request
        if reset:
            urllib.request.urlopen(urllib.request.Request(f"{url}/admin/counters/reset", method="POST"),
                                   timeout=30).read()
            return None
        return json.loads(urllib.request.urlopen(f"{url}/admin/counters", timeout=30).read())

    def dbx_config(self, name, src, url):
        state = self.work / f"{name}-state"
        shutil.rmtree(state, ignore_errors=True)
        cfg = self.work / "cfg" / f"{name}.toml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'client_sync_dirs = ["{src}"]\ncloud_root = "/bench"\nstate_dir = "{state}"\n'
                    f'workers = {self.workers}\npoll_interval = 1\nbackend = "dropbox"\n'
                    f'dbx_token = "{self.dbx_token}"\ndbx_api_url = "{url}"\n'
                    f'dbx_content_url = "{url}"\ndbx_notify_url = "{url}"\n')
        return cfg

    def timed(self, name, argv):
        """One run of argv: wall time and peak RSS (/usr/bin/time)."""
        rss_file = self.work / "rss" / f"{name}.txt"
        rss_file.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{name}: exit {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
        return dt, int(rss_file.read_text().split()[-1])

    @staticmethod
    def routes(c):
        return ", ".join(f"{k} {v}" for k, v in sorted(c["routes"].items(), key=lambda kv: -kv[1]))

    def dropbox(self):
        """Target 7: filesync with the Dropbox backend against the bundled emulator (Release,
        loopback, default 5 ms commit lock), requests counted by the emulator's /admin/counters.
        Initial sync of the `dbx` tree (each run: fresh emulator, fresh state), then on the last
        run's state: no-change passes, the `mutate` folder rename alone, then the rest of
        `mutate`."""
        n = self.sizes()["dropbox"]
        runs = self.runs
        tree = ensure_tree(self.trees, f"dbx{n}", {"files": n, "seed": SEED}, lambda p: gen_small(p, n))
        # A copy the mutations may change (the generated tree stays as it is).
        src = self.work / "dbx-src" / "dbx"
        shutil.rmtree(src.parent, ignore_errors=True)
        src.parent.mkdir(parents=True)
        run(["cp", "-a", str(tree), str(src)])
        times, rss, reqs, emu = [], [], [], None
        for r in range(runs):
            if emu:
                self.stop_emulator(emu)
            emu, url = self.emulator("dbx-emulator")
            cfg = self.dbx_config("dbx", src, url)
            log(f"dbx-initial: run {r + 1}/{runs}, {n:,} files")
            dt, kib = self.timed(f"dbx-initial-{r}", [self.fs, "--config", str(cfg), "sync"])
            c = self.counters(url)
            times.append(dt)
            rss.append(kib)
            reqs.append(c)
            log(f"dbx-initial: {dt:.2f} s, {n / dt:.0f} files/s, {c['total']} requests "
                f"({self.routes(c)}), peak RSS {fmt_bytes(kib * 1024)}")
        self.results["dbx-initial"] = Measure(times, rss)
        totals = sorted(c["total"] for c in reqs)
        self.facts["dbx_files"] = n
        self.facts["dbx_initial_requests"] = totals
        self.facts["dbx_initial_routes"] = reqs[-1]["routes"]
        self.facts["dbx_initial_bytes_received"] = reqs[-1]["bytes_received"]

        # No-change passes (the last run's state and emulator).
        times, rss, per_pass = [], [], []
        for r in range(runs + 1):
            self.counters(url, reset=True)
            dt, kib = self.timed(f"dbx-nochange-{r}", [self.fs, "--config", str(cfg), "sync"])
            c = self.counters(url)
            if r == 0:
                continue  # warm-up
            times.append(dt)
            rss.append(kib)
            per_pass.append(c)
        self.results["dbx-nochange"] = Measure(times, rss)
        self.facts["dbx_nochange_requests"] = [c["total"] for c in per_pass]
        self.facts["dbx_nochange_routes"] = per_pass[-1]["routes"]
        log(f"dbx-nochange: median {self.results['dbx-nochange'].median:.3f} s, requests per pass "
            f"{self.facts['dbx_nochange_requests']} ({self.routes(per_pass[-1])})")

        # The folder rename of `mutate` alone, then the rest of `mutate`.
        m = mutation(n, self.sizes()["mutate"])
        folder_files = sum(1 for p in (src / m["folder"][0]).iterdir())
        os.rename(src / m["folder"][0], src / m["folder"][1])
        self.counters(url, reset=True)
        dt, kib = self.timed("dbx-rename", [self.fs, "--config", str(cfg), "sync"])
        c = self.counters(url)
        self.results["dbx-rename"] = Measure([dt], [kib])
        self.facts["dbx_rename"] = {"files": folder_files, "requests": c["total"], "routes": c["routes"]}
        log(f"dbx-rename: {dt:.3f} s, {c['total']} requests ({self.routes(c)})")
        apply_mutation(src, m, folder=False)
        self.counters(url, reset=True)
        dt, kib = self.timed("dbx-mutate", [self.fs, "--config", str(cfg), "sync"])
        c = self.counters(url)
        self.results["dbx-mutate"] = Measure([dt], [kib])
        self.facts["dbx_mutate"] = {"requests": c["total"], "routes": c["routes"]}
        log(f"dbx-mutate: {dt:.3f} s, {c['total']} requests ({self.routes(c)})")
        self.facts["dbx_emulator_peak_rss"] = self.emulator_hwm(emu)
        self.stop_emulator(emu)

        ini = self.results["dbx-initial"]
        per_k = [t / n * 1000 for t in totals]
        s = f"Dropbox backend against the emulator (Release, loopback): {n:,} small files (1–16 KiB, 100 per folder)"
        self.add("dropbox", s, f"initial sync: {totals[len(totals) // 2]:,} requests = "
                 f"{per_k[len(per_k) // 2]:.1f} per 1,000 files, {n / ini.median:,.0f} files/s", "dbx-initial")
        nc = self.facts["dbx_nochange_requests"]
        self.add("dropbox", s, f"no-change pass: {max(nc)} request(s) per pass "
                 f"({self.routes(per_pass[-1])})", "dbx-nochange")
        fr = self.facts["dbx_rename"]
        self.add("dropbox", s, f"`mutate` folder rename alone ({fr['files']} files): {fr['requests']} requests "
                 f"({self.routes(fr)}), 1 run", "dbx-rename")
        mu = self.facts["dbx_mutate"]
        k = self.sizes()["mutate"]
        self.add("dropbox", s, f"rest of `mutate` ({k} modified/added/deleted/renamed): {mu['requests']} requests "
                 f"({self.routes(mu)}), 1 run", "dbx-mutate")

    def scaling_runs(self):
        sz = self.sizes()
        base_cfg, _, base_state = self.config("empty10", self.empty[10])
        self.once("scale-init-10", [self.fs, "--config", str(base_cfg), "sync"])
        self.hf("scale-sync-10", self.fs_cmd(base_cfg, "sync"))
        self.daemon("scale-daemon-10", base_cfg, base_state, 3)
        self.once("scale-rclone-init-10", self.rclone(self.empty[10], self.work / "rclone-empty10").split())
        self.hf("scale-rclone-10", self.rclone(self.empty[10], self.work / "rclone-empty10"))
        for n in sz["scaling"]:
            cfg, _, state = self.config(f"empty{n}", self.empty[n])
            # 1M: 3 runs, and no warm-up: the initial sync and the find just before have warmed it.
            runs, warm = (3, 0) if n >= 1_000_000 else (self.runs, 1)
            self.once(f"scale-init-{n}", [self.fs, "--config", str(cfg), "sync"])
            self.hf(f"scale-find-{n}", f"find {self.empty[n]} -type f -printf '%s %T@ %i\\n'", runs=runs, warmup=warm)
            self.hf(f"scale-sync-{n}", self.fs_cmd(cfg, "sync"), runs=runs, warmup=warm)
            self.daemon(f"scale-daemon-{n}", cfg, state, runs)
            if n <= 10_000:  # rclone at 100k: the no-change run over small
                dst = self.work / f"rclone-empty{n}"
                self.once(f"scale-rclone-init-{n}", self.rclone(self.empty[n], dst).split())
                self.hf(f"scale-rclone-{n}", self.rclone(self.empty[n], dst))
            self.scaling.append(n)

    def bwlimit_runs(self):
        """bwlimit's accuracy (issue 15: within +-10 % over 20 s). Local backend: a daemon with
        bwlimit and status_listen uploads one big file; the rate is read from its live /status
        (current_pass.bytes_done) over a 20 s window opened 2 s into the transfer. Dropbox
        emulator: the same file by `filesync sync`; the rate is its size over the sync's wall time
        (progress arrives per 4 MiB chunk, too coarse for a window)."""
        import socket
        import urllib.request
        limit, size = BWLIMIT, BWLIMIT * 28
        src = self.work / "bw-src"
        src.mkdir(parents=True, exist_ok=True)
        gen_big(src / "big.bin", size)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        cfg, _, _ = self.config("bwlimit", src)
        cfg.write_text(cfg.read_text() + f'bwlimit = {limit}\nstatus_listen = "127.0.0.1:{port}"\n')

        def sent():
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5).read()
                current = json.loads(body).get("current_pass") or {}
                return time.monotonic(), current.get("bytes_done")
            except OSError:
                return time.monotonic(), None

        log(f"bwlimit-local: {fmt_bytes(size)} at bwlimit {fmt_bytes(limit)}/s, 20 s window")
        errf = open(self.work / "bwlimit.daemon.log", "wb")
        p = subprocess.Popen([self.fs, "--config", str(cfg), "run"], stdout=errf, stderr=errf)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and not (sent()[1] or 0) > 0:
                time.sleep(0.1)
            time.sleep(2)
            t0, b0 = sent()
            time.sleep(20)
            t1, b1 = sent()
        finally:
            p.terminate()
            p.wait(timeout=120)
            errf.close()
        if b0 is None or b1 is None or b1 >= size:
            raise RuntimeError(f"bwlimit-local: no live window (bytes {b0} -> {b1} of {size})")
        local = (b1 - b0) / (t1 - t0)
        self.facts["bwlimit"] = {"limit": limit, "local_rate": local, "local_window_s": t1 - t0}
        log(f"bwlimit-local: {fmt_bytes(local)}/s ({local / limit:.1%} of the limit)")

        emu, url = self.emulator("bwlimit-dbx")
        try:
            dcfg = self.dbx_config("bwlimit-dbx", src, url)
            dcfg.write_text(dcfg.read_text() + f'bwlimit = {limit}\ndbx_chunk_size = "4MiB"\n')
            dt, _ = self.timed("bwlimit-dbx", [self.fs, "--config", str(dcfg), "sync"])
        finally:
            self.stop_emulator(emu)
        self.facts["bwlimit"].update({"dropbox_rate": size / dt, "dropbox_s": dt})
        log(f"bwlimit-dropbox: {fmt_bytes(size / dt)}/s over {dt:.1f} s ({size / dt / limit:.1%} of the limit)")

    def run_micro(self):
        js = self.work / "micro.json"
        js.parent.mkdir(parents=True, exist_ok=True)
        log("micro-benchmarks (Google Benchmark)")
        argv = [self.args.micro_bin, f"--benchmark_out={js}", "--benchmark_out_format=json"]
        if self.q:
            argv.append("--benchmark_min_time=0.1")
        run(argv, stdout=subprocess.DEVNULL)
        for b in json.loads(js.read_text())["benchmarks"]:
            self.micro.append(b)

    def run_profile(self):
        """perf (cpu-clock sampling: this VM has no hardware counters) over the no-change pass of
        small, and callgrind (instruction counts) over the no-change pass of the 10k tree."""
        parts = []
        cfg = self.cfg_small
        data = self.work / "perf.data"
        if shutil.which("perf"):
            log("profile: perf record of the no-change pass over small")
            run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-g", "-o", str(data), "--",
                 self.fs, "--config", str(cfg), "sync"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for sort in ("dso", "sym"):
                text = out(["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", sort,
                            "--percent-limit", "1", "-g", "none"])
                lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
                parts.append(f"perf report --no-children --sort {sort} (cpu-clock samples, >= 1%):\n" +
                             "\n".join(lines[:25]))
            log("profile: perf record of filesync hash over the big file")
            hdata = self.work / "perf-hash.data"
            run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-o", str(hdata), "--",
                 self.fs, "hash", str(self.big)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            text = out(["perf", "report", "-i", str(hdata), "--stdio", "--no-children", "--sort", "dso,sym",
                        "--percent-limit", "2"])
            lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
            parts.append("perf report of `filesync hash` (one file, page cache), >= 2%:\n" + "\n".join(lines[:12]))
        if shutil.which("valgrind") and 10_000 in self.scaling:
            log("profile: callgrind of the no-change pass over the 10k tree")
            cg = self.work / "callgrind.out"
            cfg10k = self.work / "cfg" / "empty10000.toml"
            run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", self.fs, "--config", str(cfg10k),
                 "sync"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            text = out(["callgrind_annotate", "--inclusive=yes", str(cg)])
            lines = [l for l in text.splitlines() if re.match(r"^\s*[\d,]+ \(", l)]
            parts.append("callgrind_annotate --inclusive=yes (instructions, no-change pass over 10k files):\n" +
                         "\n".join(lines[:30]))
            text = out(["callgrind_annotate", str(cg)])
            lines = [l for l in text.splitlines() if re.match(r"^\s*[\d,]+ \(", l)]
            parts.append("callgrind_annotate (self instructions):\n" + "\n".join(lines[:25]))
        self.profile = "\n\n".join(parts)

    # -- report
    def machine(self):
        lscpu = out(["lscpu"])
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()
        mem = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1)) * 1024
        fstype = out(["df", "-T", str(self.dir)]).splitlines()[1].split()[1]
        versions = {
            "filesync": self.fs,
            "rclone": out(["rclone", "version"]).splitlines()[0],
            "rsync": out(["rsync", "--version"]).splitlines()[0],
            "cp": out(["cp", "--version"]).splitlines()[0],
            "openssl": out(["openssl", "version"]).strip(),
            "hyperfine": out(["hyperfine", "--version"]).strip(),
        }
        return {"cpu": model, "cores": os.cpu_count(), "ram": mem, "kernel": os.uname().release,
                "fs": fstype, "dir": str(self.dir), "versions": versions}

    def report(self, machine, load_start, load_end, elapsed):
        R, F = self.results, self.facts
        lines = []
        w = lines.append
        w(f"## filesync benchmark ({'quick' if self.q else 'full'} run, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
        w("")
        w(f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram'] / GIB:.0f} GiB RAM, "
          f"Linux {machine['kernel']}, {machine['fs']} at {machine['dir']}. Warm page cache (caches are "
          f"never dropped). {self.runs} timed runs after 1 warm-up (hyperfine -N); peak RSS by /usr/bin/time. "
          f"filesync and rclone use {self.workers} workers/transfers. Load average at start "
          f"{load_start}, at end {load_end}; run took {elapsed / 60:.1f} min.")
        w("")
        if self.rows:
            w("| scenario | tool | median | min – max | peak RSS | × floor | peer ÷ filesync |")
            w("|---|---|---:|---:|---:|---:|---:|")
            last = None
            for section, scenario, tool, name, floor, ref in self.rows:
                m = R[name]
                if tool.startswith("("):
                    cells = ["", "", "", "", ""]
                else:
                    cells = [f"{m.median:.3f} s", f"{m.times[0]:.3f} – {m.times[-1]:.3f}", fmt_bytes(m.rss),
                             f"{m.median / R[floor].median:.2f}×" if floor and floor != name else "", ""]
                if ref:
                    cells[4] = f"{m.median / R[ref].median:.2f}× {'(filesync faster)' if m.median > R[ref].median else '(filesync slower)'}"
                w(f"| {scenario if scenario != last else ''} | {tool} | " + " | ".join(cells) + " |")
                last = scenario
            w("")
        if self.scaling:
            w("Scaling: no-change pass over trees of empty files (1,000 per folder); RSS/file = (peak RSS − peak "
              "RSS of the same command on a 10-file tree) / files. rclone at the size of `small` is its no-change "
              "run over `small`.")
            w("")
            w("| files | find floor | filesync sync (restart) | × floor | peak RSS | RSS/file | daemon pass | daemon peak RSS | RSS/file | rclone sync | rclone RSS/file | filesync initial sync (1 run) |")
            w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            b_sync, b_d, b_rc = R["scale-sync-10"].rss, R["scale-daemon-10"].rss, R["scale-rclone-10"].rss
            for n in self.scaling:
                s, d, f = R[f"scale-sync-{n}"], R[f"scale-daemon-{n}"], R[f"scale-find-{n}"]
                rc = R.get(f"scale-rclone-{n}")
                if rc is None and n == self.sizes()["small"] and "nochange-rclone" in R:
                    rc = R["nochange-rclone"]  # the same count of files: the small tree
                init = R[f"scale-init-{n}"]
                w(f"| {n:,} | {f.median:.3f} s | {s.median:.3f} s | {s.median / f.median:.2f}× | {fmt_bytes(s.rss)} | "
                  f"{(s.rss - b_sync) / n:.0f} B | {d.median:.3f} s | {fmt_bytes(d.rss)} | {(d.rss - b_d) / n:.0f} B | "
                  + (f"{rc.median:.3f} s | {(rc.rss - b_rc) / n:.0f} B" if rc else "– | –")
                  + f" | {init.median:.1f} s, {fmt_bytes(init.rss)} |")
            w("")
        if "bwlimit" in F:
            bw = F["bwlimit"]

            def within(rate):
                return f"{rate / bw['limit']:.1%} of the limit ({'within' if abs(rate / bw['limit'] - 1) <= 0.1 else 'OUTSIDE'} ±10 %)"
            w(f"Bandwidth limit (`bwlimit = {bw['limit']}`, {fmt_bytes(bw['limit'])}/s, one file of "
              f"{fmt_bytes(bw['limit'] * 28)}):")
            w("")
            w("| backend | how measured | achieved rate | vs bwlimit |")
            w("|---|---|---:|---|")
            w(f"| local | daemon's live `/status`, bytes sent over {bw['local_window_s']:.1f} s | "
              f"{fmt_bytes(bw['local_rate'])}/s | {within(bw['local_rate'])} |")
            if "dropbox_rate" in bw:
                w(f"| Dropbox (emulator) | `filesync sync`, file size ÷ wall time ({bw['dropbox_s']:.1f} s) | "
                  f"{fmt_bytes(bw['dropbox_rate'])}/s | {within(bw['dropbox_rate'])} |")
            w("")
        if "nochange-filesync" in R:
            w(self.targets())
        if self.micro:
            w("Micro-benchmarks (Google Benchmark, filesync_micro_bench):")
            w("")
            w("| benchmark | time/iter (wall) | CPU/iter | throughput |")
            w("|---|---:|---:|---:|")
            for b in self.micro:
                tp = ""
                if "bytes_per_second" in b:
                    tp = f"{b['bytes_per_second'] / 1e9:.2f} GB/s"
                elif "items_per_second" in b:
                    tp = f"{b['items_per_second'] / 1e6:.2f} M items/s"
                unit = b.get("time_unit", "ns")
                extra = f" ({int(b['actions']):,} actions)" if "actions" in b else ""
                w(f"| {b['name']}{extra} | {b['real_time']:.3g} {unit} | {b['cpu_time']:.3g} {unit} | {tp} |")
            w("")
        if self.profile:
            w("Profile of the no-change pass:")
            w("")
            w("```")
            w(self.profile)
            w("```")
        return "\n".join(lines)

    def targets(self):
        R, F = self.results, self.facts
        t = []
        w = t.append

        def verdict(ok):
            return "**met**" if ok else "**missed**"

        w("Targets of issue 4 (ratios from this run):")
        w("")
        w("| # | target | measured | verdict |")
        w("|---|---|---|---|")
        floor = R["find-small"].median
        d, fsync, ver = R["nochange-daemon"].median, R["nochange-filesync"].median, R["verify-filesync"].median
        rc, rs = R["nochange-rclone"].median, R["nochange-rsync"].median
        zero = F.get("nochange_bytes_hashed") == 0
        w(f"| 1 | no-change, daemon running: ≤ 1.0× find floor, ≥ 3× faster than rclone, 0 bytes read | "
          f"{d / floor:.2f}× floor, rclone ÷ daemon = {rc / d:.2f}×, bytes hashed {F.get('nochange_bytes_hashed')} | "
          f"{verdict(d <= floor and rc / d >= 3 and zero)}"
          + ("" if d <= floor else f" (floor missed by {d / floor - 1:.0%})") + " |")
        w(f"| 2 | first pass after restart ≤ 1.5× floor, 0 bytes read | {fsync / floor:.2f}× floor, bytes hashed "
          f"{F.get('nochange_bytes_hashed')} | {verdict(fsync <= 1.5 * floor and zero)}"
          + ("" if fsync <= 1.5 * floor else f" (by {fsync / (1.5 * floor) - 1:.0%})") + " |")
        w(f"| 2b | sync --verify beats rclone and rsync | rclone ÷ verify = {rc / ver:.2f}×, rsync ÷ verify = "
          f"{rs / ver:.2f}× | {verdict(ver < rc and ver < rs)} |")
        if "initial-filesync" in R:
            i, cp = R["initial-filesync"].median, R["initial-cp"].median
            irc, irs = R["initial-rclone"].median, R["initial-rsync"].median
            ok = i <= 1.5 * cp and i < irc and i < irs
            w(f"| 3 | initial sync of mixed ≤ 1.5× cp -a, faster than rclone and rsync | {i / cp:.2f}× cp -a "
              f"({i / R['initial-cp-sync'].median:.2f}× cp -a && sync), rclone ÷ filesync = {irc / i:.2f}×, "
              f"rsync ÷ filesync = {irs / i:.2f}×; mirror identical: {F.get('initial_filesync_mirror_identical')} | "
              f"{verdict(ok)}" + ("" if i <= 1.5 * cp else f" (by {i / (1.5 * cp) - 1:.0%} on cp -a)") + " |")
        if "mutate-filesync" in R:
            mu, fl = R["mutate-filesync"].median, R["floor-mutate"].median
            mf = F.get("mutate_filesync", {})
            zero_copy = mf.get("bytes_uploaded") == F.get("mutate_changed_bytes")
            w(f"| 4 | mutate ≤ 1.3× (floor + copying changed bytes); renames copy 0 bytes | {mu / fl:.2f}×; uploaded "
              f"{mf.get('uploaded')} files / {mf.get('bytes_uploaded')} B (changed: {F.get('mutate_changed_bytes')} B), "
              f"moved {mf.get('moved')}, deleted {mf.get('deleted')} | {verdict(mu <= 1.3 * fl and zero_copy)}"
              + ("" if mu <= 1.3 * fl else f" (by {mu / (1.3 * fl) - 1:.0%})") + " |")
        if "hash-filesync" in R:
            size = self.big.stat().st_size
            rate = size / R["hash-filesync"].median
            ossl = F["openssl_Bps"]
            best = size / R["hash-filesync"].times[0] / F["openssl_runs_Bps"][-1]
            w(f"| 5a | filesync hash ≥ 90% of openssl sha256, 1 core | medians: {rate / 1e9:.2f} GB/s = {rate / ossl:.0%} "
              f"of {ossl / 1e9:.2f} GB/s (wall clock); best run ÷ best openssl run: {best:.0%} | "
              f"{verdict(rate >= 0.9 * ossl)} |")
            w1c, w1, w2 = R["rehash-w1-1core"].median, R["rehash-w1"].median, R["rehash-w2"].median
            hashed = (F.get("rehash_w2") or {}).get("bytes_hashed") or 0
            base = R["rehash-none"].median
            h1c, hw1, hw2 = (max(x - base, 1e-9) for x in (w1c, w1, w2))
            # "Every core": 2 workers on both cores against 1 worker held to one core. Against 1
            # worker on both cores the ratio is lower by design: that pass already hashes the
            # blocks of big files on both cores.
            w(f"| 5b | hashing many files uses every core (≥ 1.8× on 2) | the pass minus its fixed costs with "
              f"nothing touched ({base:.3f} s): 1 worker on 1 core → 2 workers on 2 cores: {h1c / hw2:.2f}× "
              f"({w1c / w2:.2f}× for the whole pass); 1 → 2 workers, both on 2 cores: {hw1 / hw2:.2f}×; "
              f"{hashed / hw2 / 1e9:.2f} GB/s with 2 workers = {hashed / hw2 / ossl:.2f}× one core's openssl rate "
              f"({hashed} B hashed per pass) | {verdict(h1c / hw2 >= 1.8)} |")
        if self.scaling:
            per = []
            for n in self.scaling:
                if n >= 100_000:
                    per.append((n, (R[f"scale-sync-{n}"].rss - R["scale-sync-10"].rss) / n,
                                (R[f"scale-daemon-{n}"].rss - R["scale-daemon-10"].rss) / n))
            txt = "; ".join(f"{n:,}: {a:.0f} B (sync), {b:.0f} B (daemon)" for n, a, b in per)
            rcp = ""
            if "nochange-rclone" in R:
                n = self.sizes()["small"]
                rcp = (f"; rclone (no-change over small, {n:,} files): "
                       f"{(R['nochange-rclone'].rss - R['scale-rclone-10'].rss) / n:.0f} B")
            w(f"| 6 | peak RSS ≤ 200 B per tracked file above baseline at 100k and 1M | {txt}{rcp} | "
              f"{verdict(all(a <= 200 and b <= 200 for _, a, b in per))} |")
        if "dbx-initial" in R:
            n = F["dbx_files"]
            tot = F["dbx_initial_requests"]
            per_k = tot[len(tot) // 2] / n * 1000
            nc = F["dbx_nochange_requests"]
            fr = F["dbx_rename"]
            # The rename pass also lists the changes (list_folder/continue), as every pass does.
            rename_ops = fr["requests"] - fr["routes"].get("files/list_folder/continue", 0)
            ok = per_k <= 10 and max(nc) == 1 and rename_ops == 1
            ini = R["dbx-initial"]
            w(f"| 7 | Dropbox path (emulator): ≤ 10 requests per 1,000 files, no-change = 1 request, folder "
              f"rename = 1 request | initial sync of {n:,} files: {per_k:.1f} requests per 1,000 files "
              f"({min(tot):,}–{max(tot):,} requests), {n / ini.median:,.0f} files/s, peak RSS {fmt_bytes(ini.rss)}; "
              f"no-change: {max(nc)} request(s) per pass; folder rename ({fr['files']} files): {rename_ops} "
              f"request(s) + the pass's list_folder/continue ({self.routes(fr)}) | {verdict(ok)}"
              + ("" if per_k <= 10 else f" (requests per 1,000 files by {per_k / 10 - 1:.0%})") + " |")
        if self.scaling:
            ns = self.scaling
            first, last = ns[0], ns[-1]
            grow = (R[f"scale-sync-{last}"].median / R[f"scale-sync-{first}"].median) / (last / first)
            w(f"| 8 | scaling linear in files | time per file {first:,} → {last:,}: "
              f"{R[f'scale-sync-{first}'].median / first * 1e6:.2f} → {R[f'scale-sync-{last}'].median / last * 1e6:.2f} µs "
              f"(growth {grow:.2f}× of linear) | {verdict(grow <= 1.25)} |")
        w("")
        return "\n".join(t)


def gnuplot(script, out):
    """Runs a gnuplot script writing the SVG `out`; a missing gnuplot is said, not fatal."""
    if not shutil.which("gnuplot"):
        log(f"gnuplot not installed (Debian package gnuplot-nox): {out.name} not drawn")
        return False
    run(["gnuplot"], input=script.encode())
    log(f"written {out}")
    return True


def charts(b):
    """SVG charts of the scaling table (time of a no-change pass against the number of files, log-log)
    and of the latency of each timed scenario (median with min-max), next to results.md."""
    R, d = b.results, b.dir
    head = ('set terminal svg size 760,440 dynamic font "sans,11" background "white"\n'
            'set termoption noenhanced\nset key top left\nset grid\n')
    if b.scaling:
        data = d / "scaling.dat"
        with open(data, "w") as f:
            f.write("# files find filesync-sync daemon-pass rclone\n")
            for n in b.scaling:
                rc = R.get(f"scale-rclone-{n}")
                f.write(f"{n} {R[f'scale-find-{n}'].median} {R[f'scale-sync-{n}'].median} "
                        f"{R[f'scale-daemon-{n}'].median} {rc.median if rc else 'NaN'}\n")
        svg = d / "scaling.svg"
        gnuplot(head + f'set output "{svg}"\nset logscale xy\nset format x "%.0s%c"\n'
                'set title "No-change pass over trees of empty files (median)"\n'
                'set xlabel "files"\nset ylabel "seconds"\n'
                f'plot "{data}" using 1:3 with linespoints lw 2 title "filesync sync (process start)", '
                f'"{data}" using 1:4 with linespoints lw 2 title "filesync daemon pass", '
                f'"{data}" using 1:2 with linespoints dt 2 title "find (floor)", '
                f'"{data}" using 1:5 with linespoints title "rclone sync"\n', svg)
    timed = [(name, m) for name, m in R.items() if len(m.times) > 1]
    if timed:
        data = d / "latency.dat"
        with open(data, "w") as f:
            for name, m in timed:
                f.write(f'"{name}" {m.median} {m.times[0]} {m.times[-1]}\n')
        svg = d / "latency.svg"
        height = 200 + 18 * len(timed)
        gnuplot(head.replace("760,440", f"760,{height}") + f'set output "{svg}"\nset logscale x\n'
                'set title "Latency of each timed scenario: median, min-max (seconds)"\n'
                'set ytics scale 0\nset yrange [-1:*] reverse\nset xlabel "seconds"\nunset key\n'
                f'plot "{data}" using 2:0:3:4:ytic(1) with xerrorbars pt 7 lw 2\n', svg)


def fmt_bytes(b):
    if b is None:
        return ""
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b:.0f} B"


# ---------------------------------------------------------------- prepare hooks (run by hyperfine)

def hook(args):
    d = Path(args.dir).resolve()
    ctx = json.loads((d / "ctx.json").read_text())
    name, rest = args.words[0], args.words[1:]
    if name == "fresh":  # empty the given dirs and flush dirty pages so runs start alike
        for p in map(Path, rest):
            shutil.rmtree(p, ignore_errors=True)
        run(["sync", "-f", str(d)])
    elif name == "fresh-dir":
        shutil.rmtree(rest[0], ignore_errors=True)
        os.makedirs(rest[0])
    elif name == "touch":  # a new mtime on every file, content unchanged
        counter = d / "touch.counter"
        n = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(n))
        run(["find", rest[0], "-type", "f", "-exec", "touch", "-d", f"@{BASE_MTIME + 20_000_000 + n}", "{}", "+"])
    elif name == "mutate-prepare":  # back to `small`, the tool in sync with it, then mutate
        tool = rest[0]
        src = d / "trees" / "small"
        m = mutation(ctx["small"], ctx["mutate"])
        marker = d / "trees" / "small.mutated"
        if marker.exists():
            revert_mutation(src, m, ctx["small"])
            marker.unlink()
        cmd = (d / f"mutate-{tool}.cmd").read_text().split()
        run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        marker.write_text("1")
        apply_mutation(src, m)
        run(["sync", "-f", str(src)])
    else:
        raise SystemExit(f"unknown hook {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~10x smaller trees, 3 runs, no 1M tree")
    ap.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--micro", action="store_true", help="only the micro-benchmarks")
    ap.add_argument("--no-micro", action="store_true", help="skip the micro-benchmarks")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf/callgrind profile")
    ap.add_argument("--skip-1m", action="store_true", help="leave the 1,000,000-file tree out of the scaling table")
    ap.add_argument("--only", default="", help="comma list of parts: nochange,mutate,initial,hash,dropbox,scaling,bwlimit")
    ap.add_argument("--runs", type=int, default=0, help="timed runs per scenario (default 5, quick 3)")
    ap.add_argument("--workers", type=int, default=4, help="filesync workers = rclone --transfers (default 4, "
                                                           "both tools' default)")
    ap.add_argument("--dir", default=os.environ.get("FILESYNC_BENCH_DIR", "/tmp/filesync-bench"),
                    help="scratch dir (default $FILESYNC_BENCH_DIR or /tmp/filesync-bench); trees are kept there")
    ap.add_argument("--filesync", default="build/release/src/cli/filesync")
    ap.add_argument("--micro-bin", default="build/release/bench/filesync_micro_bench")
    ap.add_argument("--emulator", default="build/release/tools/dropbox_emulator/filesync-dropbox-emulator",
                    help="the Dropbox API emulator binary (Release) for the Dropbox rows")
    ap.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.words and args.words[0] == "hook":
        args.words = args.words[1:]
        return hook(args)
    if any(c.isspace() for c in str(Path(args.dir).resolve())):
        raise SystemExit("the scratch dir must not contain spaces (commands run without a shell)")

    b = Bench(args)
    started = time.time()
    load_start = os.getloadavg()[0]
    b.work.mkdir(parents=True, exist_ok=True)
    if not args.micro:
        parts = set(args.only.split(",")) if args.only else {"nochange", "mutate", "initial", "hash", "dropbox", "scaling",
                                                                  "bwlimit"}
        # Long, load-insensitive work first; the no-change passes (the most sensitive to a busy
        # machine) last.
        b.setup()
        b.small_init()
        if "scaling" in parts:
            b.scaling_runs()
        if "initial" in parts or "hash" in parts:
            b.mixed_initial()
        if "hash" in parts:
            b.hashing()
        if "dropbox" in parts:
            b.dropbox()
        if "bwlimit" in parts:
            b.bwlimit_runs()
        if "mutate" in parts:
            b.mutate()
        b.small_nochange()
        if not args.no_micro:
            b.run_micro()
        if not args.no_profile:
            b.run_profile()
    elif not args.no_micro:
        b.run_micro()
    load_end = os.getloadavg()[0]
    text = b.report(b.machine(), f"{load_start:.2f}", f"{load_end:.2f}", time.time() - started)
    print(text)
    (b.dir / "results.md").write_text(text + "\n")
    (b.dir / "results.json").write_text(json.dumps(
        {"results": {k: v.json() for k, v in b.results.items()}, "facts": b.facts, "micro": b.micro}, indent=1))
    log(f"written {b.dir / 'results.md'} and results.json")
    charts(b)


if __name__ == "__main__":
    sys.exit(main())
