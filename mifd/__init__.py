"""mifd: the executable companion to Tomoda, Tsuda & Yamaguti (2025), MI minimisation in RNNs."""

__version__ = "0.1.0"
