import sys, time, numpy as np
from dataclasses import replace
from nvcodec.corpus import scan, keyframe_positions
from nvcodec.media import read_frames
from nvcodec.keyframes import encode_keyframes, decode_keyframes
from nvcodec.presets import build_config
from nvcodec.motion import MotionConfig, estimate_video, floor_video, motion_n_bytes
from nvcodec.metrics import psnr_per_frame
vids = [np.stack(list(read_frames(s.path))) for s in scan(["samples"], warn=lambda m: None)]
npix = sum(v.shape[0]*v.shape[1]*v.shape[2] for v in vids)
base = build_config("fast").keyframe_codec
for q in [int(a) for a in sys.argv[1].split(",")]:
    codec = replace(base, quality=q)
    kb, dec = 0, []
    for v in vids:
        coded = encode_keyframes(v[keyframe_positions(len(v), 8)], codec)
        kb += sum(len(d) for *_, d in coded)
        dec.append(decode_keyframes(b"".join(d for *_, d in coded), codec, v.shape[2], v.shape[1], sum(n for _, n, _ in coded)))
    for grid in [int(g) for g in sys.argv[2].split(",")]:
        for step in [int(s) for s in (sys.argv[3] if len(sys.argv) > 3 else "4,2").split(",")]:
            t = time.time(); mb = 0; sc = []
            for v, kf in zip(vids, dec):
                m = estimate_video(v, kf, 8, MotionConfig(grid=grid, step_qpel=step))
                mb += motion_n_bytes(m)
                sc.append(psnr_per_frame(v, floor_video(kf, m, len(v), 8)))
            print(f"q{q} grid{grid} step{step}: kf {kb} B motion {mb} B  bpp {8*(kb+mb+700)/npix:.4f}  floor {np.mean(np.concatenate(sc)):.2f} dB  ({time.time()-t:.0f}s)", flush=True)
