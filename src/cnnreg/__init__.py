"""cnnreg: regularization studies for CNNs on medical images."""

__version__ = "0.1.0"
