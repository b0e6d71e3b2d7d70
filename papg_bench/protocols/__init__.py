"""Evaluation protocols: query/gallery per trial, CMC / mAP / mINP, retrieval, re-ranking.

- :class:`papg_bench.protocols.protocol.Protocol`: the contract; one subclass per dataset
  (``sysu``, ``regdb``, ``llcm`` modules), found through :mod:`papg_bench.catalog`
- :func:`papg_bench.protocols.metrics.evaluate`
- :func:`papg_bench.protocols.retrieval.distance_matrix`, :func:`papg_bench.protocols.rerank.rerank`
- :func:`papg_bench.protocols.evaluate.evaluate_features` (every trial of a protocol -> result record)
"""
