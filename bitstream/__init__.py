"""The .nvc container and entropy coding of integer arrays (torch-free; the format is FORMAT.md)."""
from .chunks import FORMAT_MAJOR, FORMAT_MINOR
from .container import NvcReader, motion_chunk_n_bytes, tensor_chunk_n_bytes, write_nvc
from .entropy import decode_ints, encode_ints, ints_code_length_bits, ints_symbol_costs_bits
from .errors import NvcFormatError
from .metadata import VideoRecord, check_video_name, keyframe_count
from .motion import MOTN, MotionReader, VideoMotion, read_motion, write_motion
from .positions import KeyframeLayout, regular_keyframes
from .segments import KeyframeSegment
from .tensors import QuantizedTensor

__all__ = [
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "NvcFormatError",
    "QuantizedTensor",
    "KeyframeSegment",
    "VideoRecord",
    "write_nvc",
    "tensor_chunk_n_bytes",
    "motion_chunk_n_bytes",
    "NvcReader",
    "encode_ints",
    "decode_ints",
    "ints_code_length_bits",
    "ints_symbol_costs_bits",
    "check_video_name",
    "keyframe_count",
    "KeyframeLayout",
    "regular_keyframes",
    "MOTN",
    "VideoMotion",
    "MotionReader",
    "write_motion",
    "read_motion",
]
