"""spherex-archive: a self-hostable, IRSA-compatible archive for SPHEREx spectral images."""

__version__ = "0.1.0"
