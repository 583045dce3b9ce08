#!/usr/bin/env bash
# The GPU kit: one short run of nvcodec on a rented CUDA machine (bare: python3 with torch,
# numpy, click, tqdm, matplotlib, scipy; no ffmpeg, no network), and its preparation here.
#
#   bash benchmarks/device_run.sh build-ffmpeg   # HERE, once (~15 min on 2 cores): .whl/ffmpeg-*.tar.xz
#                                                # (its last step alone: package-ffmpeg PATH/TO/ffmpeg)
#   bash benchmarks/device_run.sh prepare        # HERE, before each device call: wheels, corpus, checks
#   bash benchmarks/device_run.sh verify paper 320x256 16   # HERE: one protocol's frames only (prepare
#                                                # checks every NVC_RD_N's, or native SIZE MAX_FRAMES)
#   bash benchmarks/device_run.sh run            # ON THE DEVICE, with $OUT set; everything lands in $OUT
#
# What travels (the device gets only the repository; carry [".whl", ".corpus"]):
#   .whl/*.whl       constriction, zstandard, ffmpeg-python, future, pytorch-msssim, bjontegaard
#                    for CPython 3.12 (installed with --target /tmp/nvc_site, nothing else touched)
#   .whl/ffmpeg-*.tar.xz  ffmpeg 5.1.9 built here from Debian's source (the version the committed
#                    tables were measured with, so frames read on the device are bit-identical to
#                    the anchors' frames; imageio-ffmpeg's 9.x build crops one corpus video
#                    differently and its wheel alone is 68 MB) with SVT-AV1 1.4.1 and dav1d 1.0.0
#                    (Debian 12's, and zlib) beside it and a wrapper that finds them; set as NVCODEC_FFMPEG.
#                    Needs glibc >= 2.35 there (Ubuntu 22.04 or later).
#   .corpus/         a copy of ../shared/corpus (../shared does not travel).
# nvcodec is not pip-installed there: the run copies nvcodec/, bitstream/ (as nvcodec/bitstream)
# and cli/ (as nvcodec/cli), i.e. setup.cfg's package_dir, into /tmp/nvc_pkg with a dist-info
# carrying setup.cfg's version, and runs from there (the repository root would shadow that
# layout with its own nvcodec/ folder).
#
# run, in NVC_TOTAL_SECONDS (default 480), every stage under `timeout`, all output in $OUT:
#   1. benchmarks/cuda_bench.py (NVC_BENCH_SECONDS, default 150): environment, fitting
#      throughput of each NVC_PRESETS network on the RD corpus, an end-to-end encode of
#      samples/ (NVC_E2E_PRESET, default fast), decode speed and CUDA-vs-CPU agreement.
#   2. `cuda_bench plan`: a rate point without epochs= (NVC_PRESETS, default "medium") gets the
#      epochs that fill NVC_POINT_SECONDS (default 90) of fitting at the measured rate.
#   3. benchmarks.rd on .corpus, native protocol, 160x128 (NVC_SIZE), 300 frames, MS-SSIM on
#      every 10th frame (as the committed native-160x128 table), anchors skipped (--anchors none),
#      the planned nvcodec points, NeRV only if NVC_NERV names a ladder (default none; nerv.py now
#      fits on the GPU, but its 'match' schedule is ~300 k steps per mode at this corpus size, so
#      budget it: e.g. NVC_NERV=quick, or time one mode first).
#   $OUT, at most 8 plain files: device_run.log, cuda_bench.json, rd/results.json,
#   rd/results.md, rd/points.csv, rd/rd.png, rd_cache.tar.gz (cache/points/*.json,
#   cache/runs.json and the .nvc files the points measured).
#   Instead of stages 2-3, explicit RD stages: NVC_RD_1 .. NVC_RD_3, each the rest of a
#   benchmarks.rd command line (--corpus, --anchors none and --out are added), run in that order,
#   each under `timeout` for what is left or NVC_RD_N_SECONDS if less (NVC_BENCH_SECONDS=0 skips
#   stage 1), e.g.
#     NVC_RD_1="--protocol native --size 160x128 --max-frames 300 --ms-ssim-stride 10
#               --nvcodec-presets '' --nerv quick:target_bpp=0.0669:batch_size=8"
#   Stage N's files: rdN-results.json and rdN-cache.tar.gz (merge them like rd_cache.tar.gz, into
#   the committed folder of the same protocol, size and max frames). `prepare` checks the frames
#   of each NVC_RD_N against that folder's committed hash.
#
# Merging the device's points into benchmarks/results/native-160x128 (HERE, after the run):
#   1. Check that the run read the same frames as the committed table:
#        python -c "import json; print(json.load(open('RUN/rd/results.json'))['corpus']['frames_sha256'])"
#      must equal the committed results.json's corpus.frames_sha256 (30f43dd4...); cuda_bench.json's
#      parts.fit.corpus.matches_expected says the same. If it differs, the cache keys differ too and
#      the points cannot be merged by copying (they were measured against other frames).
#   2. mkdir -p /tmp/devrun && tar xzf RUN/rd_cache.tar.gz -C /tmp/devrun && cp /tmp/devrun/cache/points/nvcodec-*.json \
#        benchmarks/results/native-160x128/cache/points/
#      (keep the .nvc files: they are the points' evidence, decodable here with nvcodec.open).
#   3. Re-run the committed command with the device's specs, exactly as the run printed them
#      (rd/results.json "command"), and the same MS-SSIM stride:
#        python -m benchmarks.rd --corpus /work/shared/corpus --protocol native --size 160x128 \
#          --max-frames 300 --ms-ssim-stride 10 --nvcodec-presets 'SPEC1,SPEC2' \
#          --out benchmarks/results/native-160x128
#      Every point comes from the cache (the log says "cached" for each; runs.json records
#      "0/N computed"): the anchors from the committed run, the nvcodec points from the device.
#      The cache key is codec + spec + protocol/size/max_frames/seed + frames sha256 + MS-SSIM
#      stride, nothing about the machine; each point records its machine ("machine": CPU, GPU) and
#      its times there (encode_s, decode_fps are the GPU's: say so beside the table).
#
# Local dry run (CPU, python 3.11 here, so the cp312 wheels are not installed):
#   NVC_SKIP_INSTALL=1 NVC_CORPUS=/tmp/tinycorp NVC_SIZE=64x48 NVC_MAX_FRAMES=16 NVC_PRESETS=tiny \
#   NVC_E2E_PRESET=tiny NVC_BENCH_ARGS='--e2e-epochs 1 --max-fit-steps 6' NVC_TOTAL_SECONDS=300 \
#   OUT=/tmp/devtest_out bash benchmarks/device_run.sh run
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHL=$REPO/.whl
CORPUS_COPY=$REPO/.corpus
SHARED_CORPUS=${NVC_SHARED_CORPUS:-$REPO/../shared/corpus}
LIMIT_BYTES=$((64 * 1024 * 1024))
FFMPEG_VERSION=5.1.9
FFMPEG_TARBALL=$WHL/ffmpeg-$FFMPEG_VERSION-nvcodec.tar.xz
# Pinned to what this project's box runs (constriction: the coded words depend on 0.5's tables).
WHEELS="constriction==0.5.0 zstandard==0.25.0 ffmpeg-python==0.2.0 future==1.0.0 pytorch-msssim==1.0.0
        bjontegaard==1.3.0"
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64"

say() { printf '[device_run %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- build-ffmpeg (here)
build_ffmpeg() {
    # Debian 12's ffmpeg source (the 5.1.9 the committed tables used), every internal codec,
    # filter and format, nothing auto-detected, plus libsvtav1 and libdav1d from Debian 12,
    # which travel beside the binary. Needs network for apt and ~15 min of 2 cores.
    local b=${NVC_FFMPEG_BUILD:-/tmp/nvc_ffmpeg_build}
    local o="-o Dir::Etc::SourceList=$b/src.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$b/lists"
    mkdir -p "$b/lists/partial" "$b/debs" "$b/deps" "$WHL" || die "cannot create $b"
    printf 'deb-src http://deb.debian.org/debian bookworm main\ndeb-src http://deb.debian.org/debian-security bookworm-security main\n' > "$b/src.list"
    (cd "$b" && apt-get $o update -qq && apt-get $o source --download-only "ffmpeg=7:$FFMPEG_VERSION-0+deb12u1") || die "apt-get source ffmpeg"
    (cd "$b/debs" && apt-get download nasm libsvtav1-dev libsvtav1enc-dev libdav1d-dev) || die "apt-get download"
    for f in "$b"/debs/*.deb; do dpkg -x "$f" "$b/deps"; done
    local lib=$b/deps/usr/lib/x86_64-linux-gnu
    sed -i "s#^prefix=/usr#prefix=$b/deps/usr#" "$lib"/pkgconfig/*.pc
    ln -sf /usr/lib/x86_64-linux-gnu/libSvtAv1Enc.so.1 "$lib/libSvtAv1Enc.so"
    ln -sf /usr/lib/x86_64-linux-gnu/libdav1d.so.6 "$lib/libdav1d.so"
    rm -rf "$b/src" && mkdir "$b/src" && tar xf "$b"/ffmpeg_$FFMPEG_VERSION.orig.tar.xz -C "$b/src" --strip-components 1 \
        && tar xf "$b"/ffmpeg_$FFMPEG_VERSION-0+deb12u1.debian.tar.xz -C "$b" || die "unpack"
    for p in $(cat "$b/debian/patches/series"); do patch -d "$b/src" -p1 < "$b/debian/patches/$p" || die "patch $p"; done
    (cd "$b/src" && PATH=$b/deps/usr/bin:$PATH PKG_CONFIG_PATH=$lib/pkgconfig ./configure --disable-doc --disable-ffplay \
        --disable-ffprobe --disable-network --disable-autodetect --disable-debug --enable-zlib --enable-libsvtav1 \
        --enable-libdav1d --extra-version=nvcodec-device > "$b/configure.log" && PATH=$b/deps/usr/bin:$PATH nice make -j"$(nproc)" ffmpeg > "$b/make.log" 2>&1) \
        || die "build failed: see $b/configure.log and $b/make.log"
    package_ffmpeg "$b/src/ffmpeg"
}

package_ffmpeg() {
    local bin=${1:?usage: package-ffmpeg PATH_TO_BUILT_FFMPEG} d
    d=$(mktemp -d) && mkdir "$d/ffmpeg"
    cp "$bin" "$d/ffmpeg/ffmpeg.bin" && strip "$d/ffmpeg/ffmpeg.bin"
    cp -L /usr/lib/x86_64-linux-gnu/libSvtAv1Enc.so.1 /usr/lib/x86_64-linux-gnu/libdav1d.so.6 \
        /lib/x86_64-linux-gnu/libz.so.1 "$d/ffmpeg/" || die "libraries for $bin"
    cat > "$d/ffmpeg/ffmpeg" <<'EOF'
#!/bin/sh
# ffmpeg with the SVT-AV1 and dav1d libraries that travel beside it
d=$(dirname "$(readlink -f "$0")")
LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/ffmpeg.bin" "$@"
EOF
    chmod +x "$d/ffmpeg/ffmpeg"
    "$d/ffmpeg/ffmpeg" -hide_banner -version | head -1 > "$d/ffmpeg/VERSION"
    LD_LIBRARY_PATH="$d/ffmpeg" ldd "$d/ffmpeg/ffmpeg.bin" | sed "s#$d/##" >> "$d/ffmpeg/VERSION"
    tar cf - -C "$d" ffmpeg | xz -9 -T1 > "$FFMPEG_TARBALL.tmp" && mv "$FFMPEG_TARBALL.tmp" "$FFMPEG_TARBALL"
    rm -rf "$d"
    say "packed $(basename "$FFMPEG_TARBALL"): $(du -h "$FFMPEG_TARBALL" | cut -f1)"
}

# ---------------------------------------------------------------- prepare (here)
travelling_bytes() {
    # tracked + untracked-not-ignored files (what the device tool sends) + the carried folders
    local tree carried
    tree=$(cd "$REPO" && git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s+=$1} END {print s+0}')
    carried=$(du -sb "$WHL" "$CORPUS_COPY" 2>/dev/null | awk '{s+=$1} END {print s+0}')
    echo $((tree + carried))
}

prepare() {
    cd "$REPO" || exit 1
    for p in /.whl/ /.corpus/; do
        grep -qxF "$p" .git/info/exclude 2>/dev/null || { mkdir -p .git/info && echo "$p" >> .git/info/exclude; }
    done
    mkdir -p "$WHL"
    rm -f "$WHL"/nvcodec-*.whl          # nvcodec itself travels as source (see the header)
    for spec in $WHEELS; do
        local stem=${spec%%==*} version=${spec##*==}
        stem=${stem//-/_}
        if ! ls "$WHL"/"$stem"-"$version"-*.whl > /dev/null 2>&1; then
            python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
                $PLATFORMS -d "$WHL" "$spec" 2>&1 | grep -v '^WARNING: Location' || true
        fi
        ls "$WHL"/"$stem"-"$version"-*.whl > /dev/null 2>&1 || die "no wheel for $spec in $WHL"
    done
    [ -f "$FFMPEG_TARBALL" ] || die "$FFMPEG_TARBALL missing: run 'bash benchmarks/device_run.sh build-ffmpeg' first"
    # One version of each package, and the set installs for CPython 3.12 (as the device will).
    local t
    t=$(mktemp -d)
    python3 -m pip install -q --no-index --no-deps --no-compile --only-binary=:all: --python-version 3.12 \
        --implementation cp $PLATFORMS --target "$t" "$WHL"/*.whl || die "the wheels do not install together for cp312"
    rm -rf "$t"
    if [ ! -d "$CORPUS_COPY" ] || ! diff -rq "$SHARED_CORPUS" "$CORPUS_COPY" > /dev/null 2>&1; then
        [ -d "$SHARED_CORPUS" ] || die "no corpus at $SHARED_CORPUS"
        rm -rf "$CORPUS_COPY" && cp -r "$SHARED_CORPUS" "$CORPUS_COPY" || die "copying the corpus"
        say "copied $SHARED_CORPUS to .corpus"
    fi
    git rev-parse HEAD > "$WHL/COMMIT" 2>/dev/null
    [ -z "$(git status --porcelain --untracked-files=no)" ] || echo "dirty" >> "$WHL/COMMIT"
    if [ "${NVC_VERIFY:-1}" = 1 ]; then
        local stage args
        if [ -n "${NVC_RD_1:-}" ]; then
            for stage in 1 2 3; do
                args=$(printenv "NVC_RD_$stage") || continue
                verify_frames "$(rd_arg "$args" --protocol native)" "$(rd_arg "$args" --size "$SIZE")" \
                    "$(rd_arg "$args" --max-frames "$MAX_FRAMES")" || exit 1
            done
        else
            verify_frames native "$SIZE" "$MAX_FRAMES" || exit 1
        fi
    fi
    local total
    total=$(travelling_bytes)
    say "travels: $((total / 1024)) KiB of $((LIMIT_BYTES / 1024)) KiB (.whl $(du -sh "$WHL" | cut -f1), .corpus $(du -sh "$CORPUS_COPY" | cut -f1))"
    [ "$total" -lt "$LIMIT_BYTES" ] || die "over the device's 64 MiB: $total bytes"
    say "ready: carry [\".whl\", \".corpus\"] and run 'bash benchmarks/device_run.sh run'"
}

rd_arg() {
    # rd_arg ARGS --flag DEFAULT: the value of --flag in an rd command line, or DEFAULT
    python3 -c 'import shlex, sys
a = shlex.split(sys.argv[1])
print(a[a.index(sys.argv[2]) + 1] if sys.argv[2] in a else sys.argv[3])' "$1" "$2" "$3"
}

verify_frames() {
    # verify_frames PROTOCOL SIZE MAX_FRAMES: the carried ffmpeg must read the carried corpus into
    # the committed table's frames.
    local protocol=$1 size=$2 max_frames=$3 d expect
    d=$(mktemp -d)
    tar xJf "$FFMPEG_TARBALL" -C "$d" || { say "cannot unpack $FFMPEG_TARBALL"; return 1; }
    expect=$(expected_sha "$protocol" "$size" "$max_frames")
    say "checking the frames the device will read (carried ffmpeg, .corpus, $protocol, $size, $max_frames frames)..."
    NVCODEC_FFMPEG=$d/ffmpeg/ffmpeg nice python3 - "$CORPUS_COPY" "$protocol" "$size" "$max_frames" "$expect" <<'EOF'
import sys
from pathlib import Path
from benchmarks.rd import parse_size, read_corpus
corpus = read_corpus(Path(sys.argv[1]), sys.argv[2], parse_size(sys.argv[3]), int(sys.argv[4]), None, log=lambda m: None)
expect = sys.argv[5]
print(f"  frames sha256 {corpus.sha256} ({corpus.n_frames} frames); committed table: {expect or 'none'}")
sys.exit(0 if not expect or corpus.sha256 == expect else 1)
EOF
    local rc=$?
    rm -rf "$d"
    [ $rc = 0 ] || say "the carried ffmpeg reads other frames than the committed table: device points would not merge"
    return $rc
}

expected_sha() {
    # expected_sha PROTOCOL SIZE MAX_FRAMES: the frames hash of the committed table measured so
    python3 - "$REPO/benchmarks/results" "$1" "$2" "$3" <<'EOF' 2>/dev/null
import json, sys
from pathlib import Path
for f in sorted(Path(sys.argv[1]).glob("*/results.json")):
    r = json.loads(f.read_text())
    c = r.get("corpus", {})
    if (r.get("protocol") == sys.argv[2] and f"{c.get('width')}x{c.get('height')}" == sys.argv[3]
            and c.get("max_frames") == int(sys.argv[4])):
        print(c["frames_sha256"])
        break
EOF
}

# ---------------------------------------------------------------- run (on the device)
collect() {
    # Whatever exists goes to $OUT (8 files at most, 2 folders deep).
    mkdir -p "$OUT/rd"
    for f in results.json results.md points.csv rd.png; do
        [ -f "$RD_OUT/$f" ] && cp "$RD_OUT/$f" "$OUT/rd/$f"
    done
    local keep stage
    keep=$(cd "$RD_OUT" 2>/dev/null && ls -d cache/points cache/runs.json cache/work/*.nvc 2>/dev/null)
    [ -n "$keep" ] && (cd "$RD_OUT" && tar czf "$OUT/rd_cache.tar.gz" $keep)
    for stage in 1 2 3; do
        [ -d "$RD_OUT$stage" ] || continue
        [ -f "$RD_OUT$stage/results.json" ] && cp "$RD_OUT$stage/results.json" "$OUT/rd$stage-results.json"
        keep=$(cd "$RD_OUT$stage" && ls -d cache/points cache/runs.json cache/work/*.nvc 2>/dev/null)
        [ -n "$keep" ] && (cd "$RD_OUT$stage" && tar czf "$OUT/rd$stage-cache.tar.gz" $keep)
    done
    rmdir "$OUT/rd" 2>/dev/null
    say "collected: $(cd "$OUT" && find . -type f | sort | tr '\n' ' ')"
}

run() {
    : "${OUT:?OUT must name the folder for results}"
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/device_run.log") 2>&1
    local total=${NVC_TOTAL_SECONDS:-480} bench=${NVC_BENCH_SECONDS:-150} py=${NVC_PYTHON:-python3}
    local corpus=${NVC_CORPUS:-$CORPUS_COPY} presets=${NVC_PRESETS:-medium} nerv=${NVC_NERV:-}
    local work=${NVC_WORK:-/tmp/nvc_run} site=/tmp/nvc_site pkg=/tmp/nvc_pkg
    left() { echo $((total - SECONDS)); }
    RD_OUT=$work/rd
    trap collect EXIT
    say "start: total ${total} s, presets '$presets', corpus $corpus, size $SIZE, max frames $MAX_FRAMES"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || say "no nvidia-smi"
    rm -rf "$work" && mkdir -p "$work" || die "cannot create $work"

    if [ "${NVC_SKIP_INSTALL:-0}" != 1 ]; then
        $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$WHL"/*.whl \
            || die "pip install of the carried wheels failed"
        export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
    fi
    if [ -z "${NVCODEC_FFMPEG:-}" ] && [ "${NVC_SKIP_FFMPEG:-0}" != 1 ]; then
        # Python's lzma, not tar -J: the device may have no xz binary
        $py -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="tar")' \
            "$FFMPEG_TARBALL" "$work/ffmpeg_pkg" || die "cannot unpack $FFMPEG_TARBALL"
        export NVCODEC_FFMPEG=$work/ffmpeg_pkg/ffmpeg/ffmpeg
    fi
    say "ffmpeg: ${NVCODEC_FFMPEG:-from PATH or imageio-ffmpeg}: $("${NVCODEC_FFMPEG:-ffmpeg}" -hide_banner -version 2>&1 | head -1)"

    # nvcodec as setup.cfg lays it out, importable without installing (see the header).
    rm -rf "$pkg" && mkdir -p "$pkg" || die "cannot create $pkg"
    cp -r "$REPO/nvcodec" "$pkg/nvcodec" && cp -r "$REPO/bitstream" "$pkg/nvcodec/bitstream" \
        && cp -r "$REPO/cli" "$pkg/nvcodec/cli" && ln -s "$REPO/benchmarks" "$pkg/benchmarks" || die "package layout"
    local version
    version=$(sed -n 's/^version *= *//p' "$REPO/setup.cfg")
    mkdir -p "$pkg/nvcodec-$version.dist-info" && printf 'Metadata-Version: 2.1\nName: nvcodec\nVersion: %s\n' "$version" \
        > "$pkg/nvcodec-$version.dist-info/METADATA"
    cd "$pkg" || exit 1
    export PYTHONUNBUFFERED=1 NVC_GIT_COMMIT="$(cat "$WHL/COMMIT" 2>/dev/null | tr '\n' ' ')"
    $py -c "import nvcodec.bitstream, nvcodec.encoder, benchmarks.rd, sys; print('imports ok:', nvcodec.__file__, sys.version.split()[0])" \
        || die "nvcodec does not import from $pkg"

    local expect
    expect=$(expected_sha native "$SIZE" "$MAX_FRAMES")
    if [ "$bench" -gt 0 ]; then
        say "stage 1: cuda_bench (budget ${bench} s, $(left) s left)"
        timeout -k 10 $((bench + 30)) $py -m benchmarks.cuda_bench --out "$OUT/cuda_bench.json" --budget "$bench" \
            --corpus "$corpus" --size "$SIZE" --max-frames "$MAX_FRAMES" --frames-cache "$RD_OUT/cache" \
            --presets "$presets" --samples "$REPO/samples" --e2e-preset "${NVC_E2E_PRESET:-fast}" \
            ${expect:+--expect-sha "$expect"} ${NVC_BENCH_ARGS:-}
        say "stage 1 exit $?; $(left) s left"
    fi

    if [ -n "${NVC_RD_1:-}" ]; then
        local stage args rc=0 status
        for stage in 1 2 3; do
            args=$(printenv "NVC_RD_$stage") || continue
            [ "$(left)" -gt 60 ] || { say "RD stage $stage skipped: $(left) s left"; continue; }
            local cap=$(($(left) - 25)) stage_out=$RD_OUT$stage limit
            limit=$(printenv "NVC_RD_${stage}_SECONDS") && [ "$limit" -lt "$cap" ] && cap=$limit
            say "RD stage $stage, at most $cap s: $args"
            eval "timeout -k 10 $cap $py -m benchmarks.rd --corpus \"\$corpus\" --anchors none \
                --out \"\$stage_out\" $args"
            status=$?
            [ $status = 0 ] || rc=$status
            say "RD stage $stage exit $status; $(left) s left"
        done
        exit $rc
    fi

    local specs
    specs=$($py -m benchmarks.cuda_bench plan --bench "$OUT/cuda_bench.json" --presets "$presets" \
        --point-seconds "${NVC_POINT_SECONDS:-90}" --seconds-left $(($(left) - 40)))
    say "stage 2: rate points '${specs}'"
    if [ -z "$specs" ] && [ -z "$nerv" ]; then
        say "no rate point fits in the time left: RD run skipped"
        exit 0
    fi
    local rd_s=$(($(left) - 25))
    say "stage 3: RD harness, at most ${rd_s} s"
    timeout -k 10 "$rd_s" $py -m benchmarks.rd --corpus "$corpus" --protocol native --size "$SIZE" \
        --max-frames "$MAX_FRAMES" --ms-ssim-stride "${NVC_MS_SSIM_STRIDE:-10}" --anchors none \
        --nvcodec-presets "$specs" ${nerv:+--nerv "$nerv"} --out "$RD_OUT"
    local rc=$?
    say "stage 3 exit $rc; $(left) s left"
    exit $rc                 # the RD stage's status is the run's (the bench's failures are in its JSON)
}

SIZE=${NVC_SIZE:-160x128}
MAX_FRAMES=${NVC_MAX_FRAMES:-300}
case "${1:-}" in
    build-ffmpeg) build_ffmpeg ;;
    package-ffmpeg) mkdir -p "$WHL" && package_ffmpeg "${2:-}" ;;
    prepare) prepare ;;
    verify) verify_frames "${2:-native}" "${3:-$SIZE}" "${4:-$MAX_FRAMES}" ;;
    run) run ;;
    *) echo "usage: bash benchmarks/device_run.sh build-ffmpeg|prepare|verify [PROTOCOL SIZE MAX_FRAMES]|run (see the header)" >&2; exit 2 ;;
esac
