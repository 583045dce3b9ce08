"""The .nvc container and entropy coding of integer arrays (torch-free; see FORMAT.md)."""
