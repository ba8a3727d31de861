"""Generative models of price windows: a VAE and a WGAN with gradient penalty."""
