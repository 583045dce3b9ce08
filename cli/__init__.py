"""The nvcodec command (click). Thin: parses, calls the Python API, prints."""
