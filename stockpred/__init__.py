"""stockpred: a leak-free research pipeline for Chinese A-share price prediction."""

__version__ = "0.1.0"
