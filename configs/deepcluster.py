r"""DeepCluster: k-means pseudo-labels on the network's own features, re-clustered every epoch.

Run (from the repository root):

  python -m mono_ssl.main --config=configs/deepcluster.py:regime=single,scale=cpu --workdir=runs/deepcluster_single

Arguments as configs/rotnet.py: regime=single|deca|full, scale=cpu|mini|paper.
The cluster set is the run's data set (single/deca: data.dataset_size virtual
patches, cpu 50,000 / paper 1,281,167; full: the images), clustered into
500 (cpu) / 10,000 (paper) clusters after PCA to 64 / 256 dims; the
original recipe's SGD (lr 0.05, momentum 0.9, weight decay 1e-5, constant lr).
"""
from mono_ssl import config_lib


def get_config(arg: str | None = None):
  args = config_lib.parse_arg(arg, regime="single", scale="cpu")
  config = config_lib.base_config("deepcluster", args.regime, args.scale)
  cpu = args.scale != "paper"  # cpu and mini
  config.deepcluster = dict(
      num_clusters=500 if cpu else 10_000,
      pca_dim=64 if cpu else 256,
      kmeans_iters=20,
      feature_batch=1000 if cpu else 512)
  if cpu:
    config.data.dataset_size = 50_000
  config.train.update(dict(lr=0.05, nesterov=False, weight_decay=1e-5, lr_boundaries=(),
                           num_steps=6000 if cpu else 200 * config_lib.PAPER_DATASET_SIZE // 256,
                           batch_size=128 if cpu else 256))
  config.lock()
  return config
