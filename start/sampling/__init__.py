"""Sampling cited answers: prompts, generator backends (transformers, vLLM), the resumable sampler and its stage.

Importing this package is cheap: the backends import torch, transformers or vLLM only when a generator is made.
"""
