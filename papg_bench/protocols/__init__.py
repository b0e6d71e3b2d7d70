"""Evaluation protocols: SYSU-MM01 and RegDB query/gallery, CMC / mAP / mINP, retrieval, re-ranking.

- :func:`papg_bench.protocols.sysu.query_gallery` and :func:`papg_bench.protocols.regdb.query_gallery`
- :func:`papg_bench.protocols.metrics.evaluate`
- :func:`papg_bench.protocols.retrieval.distance_matrix`, :func:`papg_bench.protocols.rerank.rerank`
- :func:`papg_bench.protocols.evaluate.evaluate_features` (every trial of a protocol -> result record)
"""
