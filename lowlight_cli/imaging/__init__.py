"""Numerics on pixels, shared by inference, video and training: colour (the one luma), filters (the box and
guided filters), the working copy, shadow noise, reconstruction to full resolution, the quantiser."""
