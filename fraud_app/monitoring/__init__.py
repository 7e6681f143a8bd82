"""Monitoring (no Panel): the training reference saved with every model, PSI, the aggregates written
with each prediction, the monitoring report and review queue, and analyst feedback into training.

Submodules are imported where they are used (the storage's writer imports only
:mod:`fraud_app.monitoring.aggregates`).
"""
