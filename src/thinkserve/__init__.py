"""thinkserve: a self-hosted server for deep-thinking models, speaking Model Studio's APIs."""

__version__ = "0.1.0"
