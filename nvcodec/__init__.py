"""nvcodec: a neural video codec for collections of videos (D-NeRV, He et al. CVPR 2023).

The public Python API::

    report = nvcodec.encode(["clips/"], "out.nvc", "fast")          # a preset name, or:
    config = nvcodec.build_config("fast", epochs=40, target_bpp=0.05)
    report = nvcodec.encode(["clips/"], "out.nvc", config)
    with nvcodec.open("out.nvc") as nvc:
        frames = nvc.read(nvc.videos[0].name, frames=slice(0, 16))   # (16, H, W, 3) uint8
    nvcodec.decode("out.nvc", "outdir/")

The names are loaded lazily so that ``import nvcodec.bitstream`` (the container
layer) stays torch-free and fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "encode": ("nvcodec.encoder", "encode"),
    "EncodeReport": ("nvcodec.encoder", "EncodeReport"),
    "EncodeConfig": ("nvcodec.presets", "EncodeConfig"),
    "build_config": ("nvcodec.presets", "build_config"),
    "decode": ("nvcodec.decoder", "decode"),
    "open": ("nvcodec.decoder", "open_nvc"),
    "NvcFile": ("nvcodec.decoder", "NvcFile"),
    "ClipDataset": ("nvcodec.decoder", "ClipDataset"),
    "NvcFormatError": ("nvcodec.bitstream", "NvcFormatError"),
    "NvcError": ("nvcodec.errors", "NvcError"),
    "NvcInputError": ("nvcodec.errors", "NvcInputError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'nvcodec' has no attribute {name!r}")
