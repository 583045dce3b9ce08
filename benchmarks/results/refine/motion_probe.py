"""The probe behind nvcodec.motion_fit: a file's coded motion moved by gradient through its own (quantized,
frozen) network, clip by clip, on the 160x128 corpus clips the file was encoded from (first 32 frames).

    STE=0 OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/results/refine/motion_probe.py FILE LAMBDA ITERS LR \
        [N_VIDEOS] [THREADS]

STE=1 rounds the fields straight-through (forward on the integers, gradient at them); STE=0 optimises them
continuous and rounds once. Per clip it prints the network's squared error on its in-between frames with the
decoder's integer warps, before and after, and the coded bits; a clip is "accepted" where error + LAMBDA x bits
falls. The last line pools every clip. Written before nvcodec.motion_fit (which does the STE=0 variant, with
the network unquantized and fine-tuned after); kept for the figures in results.md.
"""
import sys, time, math, json
import numpy as np, torch, torch.nn.functional as F
from nvcodec.decoder import open_nvc
from nvcodec.media import read_frames
from nvcodec.motion import warped_clip, _interp_matrix
from nvcodec.corpus import build_clip_range, tile_grid
from nvcodec.runtime import clip_inputs
from nvcodec.bitstream.motion import encode_clip, MAX_ABS_Q
from nvcodec.qat import laplace_bits

path, lam, iters, lr = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
STE = int(__import__("os").environ.get("STE", "1"))
nvid = int(sys.argv[5]) if len(sys.argv) > 5 else 99
torch.set_num_threads(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
f = open_nvc(path)
model = f.network().eval()
for p in model.parameters():
    p.requires_grad_(False)
cfg = f.model_config
th, tw = cfg.tile_h, cfg.tile_w
K = f.interval
tot = {"sse0": 0.0, "sse1": 0.0, "sse_acc": 0.0, "b0": 0, "b1": 0, "b_acc": 0, "px": 0}
t0 = time.time()

for v, entry in enumerate(f.videos[:nvid]):
    frames = np.stack(list(read_frames(f"/work/shared/corpus/{entry.name}", size=(160, 128), max_frames=32)))
    layout = f.keyframe_layout(v)
    kfs = f._keyframes(v, 0, layout.n_keyframes - 1)
    motion = f._reader.motion(v)
    H, W = entry.height, entry.width
    rows, cols = tile_grid(H, W, th, tw)
    firsts, lasts, _, end_kfs, _ = layout.clips()
    mat_y = torch.from_numpy(_interp_matrix(H, motion.grid, motion.rows)).float()
    mat_x = torch.from_numpy(_interp_matrix(W, motion.grid, motion.cols)).float()
    unit = motion.step_qpel / 4.0
    by = torch.arange(H, dtype=torch.float32)[:, None]; bx = torch.arange(W, dtype=torch.float32)[None, :]
    for c in range(layout.n_clips):
        q0 = motion.clip(c).astype(np.int64)
        n = q0.shape[0]
        if n == 0:
            continue
        ks, ke = kfs[c], kfs[int(end_kfs[c])]
        tgt = torch.from_numpy(frames[firsts[c] + 1:firsts[c] + 1 + n]).float()          # (n, H, W, 3)

        def exact(q):
            warped = warped_clip(ks, ke, q, motion, K)[None]
            clips = build_clip_range(kfs, 0, entry.n_frames, K, th, tw, c, c + 1, positions=layout.positions,
                                     warped=warped)
            with torch.no_grad():
                out = model(*clip_inputs(clips, np.arange(clips.n_clips), torch.device("cpu")))
            fr = (out.mul(255).round().clamp(0, 255))                 # (tiles, T, 3, th, tw)
            fr = fr.view(rows, cols, K, 3, th, tw).permute(2, 0, 4, 1, 5, 3).reshape(K, rows * th, cols * tw, 3)[:, :H, :W]
            err = ((fr[1:1 + n] - tgt) ** 2).sum(dim=(1, 2, 3)).double().numpy()
            return err, clips

        err0, clips = exact(q0)
        b0 = len(encode_clip(q0.astype(np.int32))[2]) * 8
        inputs = list(clip_inputs(clips, np.arange(clips.n_clips), torch.device("cpu")))
        base_warp = inputs[4].clone()                                  # (tiles, T, 2, 3, th, tw)
        kf = torch.stack([torch.from_numpy(np.ascontiguousarray(k)).permute(2, 0, 1).float() / 255 for k in (ks, ke)])
        res0 = np.diff(q0, axis=0, prepend=np.zeros_like(q0[:1]))
        b = max(float(np.mean(np.abs(res0))), 0.2)
        u = torch.tensor(q0, dtype=torch.float32, requires_grad=True)
        opt = torch.optim.Adam([u], lr=lr)
        sy, sx = 2.0 / (H - 1), 2.0 / (W - 1)
        best = (err0.sum() + lam * b0, q0)
        for it in range(iters):
            uq = u if STE == 0 else u + (torch.round(u).clamp(-MAX_ABS_Q, MAX_ABS_Q) - u).detach()
            pix = mat_y @ (uq * unit) @ mat_x.T                           # (n, 2, 2, H, W)
            grid = torch.stack([(bx + pix[:, :, 1]) * sx - 1, (by + pix[:, :, 0]) * sy - 1], dim=-1)  # (n,2,H,W,2)
            ref = kf[None].expand(n, -1, -1, -1, -1).reshape(2 * n, 3, H, W)
            wp = F.grid_sample(ref, grid.reshape(2 * n, H, W, 2), mode="bilinear", padding_mode="border",
                               align_corners=True).view(n, 2, 3, H, W)
            wp = F.pad(wp.view(n * 2, 3, H, W), (0, cols * tw - W, 0, rows * th - H), mode="replicate")
            wp = wp.view(n, 2, 3, rows, th, cols, tw).permute(3, 5, 0, 1, 2, 4, 6).reshape(rows * cols, n, 2, 3, th, tw)
            warped_in = torch.cat((base_warp[:, :1], wp, base_warp[:, 1 + n:]), dim=1)
            out = model(*inputs[:4], warped_in)
            fr = out.view(rows, cols, K, 3, th, tw).permute(2, 0, 4, 1, 5, 3).reshape(K, rows * th, cols * tw, 3)[:, :H, :W]
            sse = ((fr[1:1 + n] * 255 - tgt) ** 2).sum()
            res = torch.diff(u, dim=0, prepend=torch.zeros_like(u[:1]))
            bits = laplace_bits(res, 0.0, b).sum()
            loss = (sse + lam * bits) / (n * H * W * 3)
            opt.zero_grad(); loss.backward(); opt.step()
        q1 = torch.round(u.detach()).clamp(-MAX_ABS_Q, MAX_ABS_Q).numpy().astype(np.int64)
        err1, _ = exact(q1)
        b1 = len(encode_clip(q1.astype(np.int32))[2]) * 8
        acc = err1.sum() + lam * b1 < err0.sum() + lam * b0
        tot["sse0"] += err0.sum(); tot["sse1"] += err1.sum(); tot["b0"] += b0; tot["b1"] += b1
        tot["sse_acc"] += (err1 if acc else err0).sum(); tot["b_acc"] += b1 if acc else b0
        tot["px"] += n * H * W * 3
        moved = int((q1 != q0).sum())
        print(f"v{v} c{c} n{n} sse {err0.sum():.0f}->{err1.sum():.0f} ({10*np.log10(err0.sum()/err1.sum()):+.3f} dB) bits {b0}->{b1} moved {moved}/{q0.size} acc {acc}", flush=True)
m = lambda s: 10 * math.log10(255**2 * tot["px"] / s)
print(json.dumps({k: float(x) for k, x in tot.items()}))
print(f"in-between pooled PSNR {m(tot['sse0']):.3f} -> all {m(tot['sse1']):.3f}, accepted {m(tot['sse_acc']):.3f}; "
      f"motion bytes {tot['b0']/8:.0f} -> {tot['b1']/8:.0f} / acc {tot['b_acc']/8:.0f}; {time.time()-t0:.0f}s")
