"""llamafactory-ext: Italian and maths fine-tunes of Qwen3 / LLaMA-3 on LLaMA-Factory.

Light on purpose: importing the package must not import torch (``llamafactory-ext --help``
answers in well under a second). Heavy dependencies are imported inside the commands.
"""

__version__ = "0.1.0"
