"""nvcodec: a neural video codec for collections of videos (D-NeRV, He et al. CVPR 2023)."""

__version__ = "0.1.0"
