"""cnnreg: regularization studies for CNNs on medical images."""

import os

# Keep TensorFlow's C++ start-up chatter (CUDA probing, CPU features) out of job logs; set the
# variable yourself to see it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
