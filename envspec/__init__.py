"""envspec: reproducible Stable Diffusion environments on four platforms from one source."""

__version__ = "0.1.0"
