"""The domain code of ``mosaic-it train`` (see :mod:`mosaic_it.apps.train` for the run itself).

* :mod:`.config`: the options of a run and its result;
* :mod:`.data`: training rows from records, RL rows, on-the-fly mosaic epochs;
* :mod:`.trainers`: TRL's SFT and GRPO trainers built for a run;
* :mod:`.resume`: which checkpoint a run continues, and whether it may;
* :mod:`.callbacks`: the reward log and the checkpoint-loading note filter;
* :mod:`.processes`: which process of a multi-GPU run this is.
"""
