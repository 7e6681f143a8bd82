"""Past one machine: the Dask engine, synthetic data on disk and batch scoring (no Panel).

:mod:`fraud_app.scale.engine` connects to ``FRAUD_APP_DASK_SCHEDULER`` or starts a
``LocalCluster`` on demand; :mod:`fraud_app.scale.synth` writes a large synthetic data set
as partitioned Parquet; :mod:`fraud_app.scale.score` scores files or directories in parts.
Dask is imported only when one of them is used.
"""
