"""``GET /api/monitoring``'s report and the review queue, computed with SQL aggregation (no Panel).

The report reads the aggregates of :mod:`fraud_app.monitoring.aggregates` (a few rows per hour)
and counts the labeled predictions through a partial index; no query scans or parses every
stored prediction. The window is widened to whole hours: ``[floor(since), ceil(until))``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from fraud_app.data import MODEL_FEATURES
from fraud_app.monitoring.aggregates import hour_of, model_reference
from fraud_app.monitoring.reference import SCORE_BINS, SCORE_FEATURE, psi
from fraud_app.storage.engine import get_engine
from fraud_app.storage.tables import monitoring_bins, monitoring_volume, predictions

#: ``bucket`` values of the report.
BUCKETS = ("hour", "day")
#: The default window: the last 7 days.
DEFAULT_WINDOW = timedelta(days=7)
NO_REFERENCE = "no reference: retrain"


class MonitoringError(ValueError):
    """A bad monitoring request (an unknown model, a bad window); ``field`` names the input."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True)
class Thresholds:
    """When the report raises an alert (environment variables in brackets)."""

    #: PSI above which an input has drifted (``FRAUD_APP_MONITOR_PSI``).
    psi: float = 0.25
    #: The flagged rate alerts outside ``[validation / band, validation * band]`` (``FRAUD_APP_MONITOR_FLAG_BAND``).
    flag_band: float = 2.0
    #: Realized precision below which the labels alert (``FRAUD_APP_MONITOR_MIN_PRECISION``).
    min_precision: float = 0.5
    #: Predictions in the window before PSI and flagged-rate alerts count (``FRAUD_APP_MONITOR_MIN_ROWS``).
    min_rows: int = 100
    #: Labeled flagged predictions before the precision alert counts (``FRAUD_APP_MONITOR_MIN_LABELS``).
    min_labels: int = 10

    @classmethod
    def from_env(cls) -> Thresholds:
        from fraud_app.config import _float, _int

        return cls(psi=_float("FRAUD_APP_MONITOR_PSI", 0.25, 0.0, 100.0),
                   flag_band=_float("FRAUD_APP_MONITOR_FLAG_BAND", 2.0, 1.0, 1000.0),
                   min_precision=_float("FRAUD_APP_MONITOR_MIN_PRECISION", 0.5, 0.0, 1.0),
                   min_rows=_int("FRAUD_APP_MONITOR_MIN_ROWS", 100, 1),
                   min_labels=_int("FRAUD_APP_MONITOR_MIN_LABELS", 10, 1))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(raw: str, field: str) -> datetime:
    """An ISO 8601 timestamp (a naive one is UTC); MonitoringError naming ``field`` otherwise."""
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise MonitoringError(f"{field} must be an ISO 8601 date or timestamp, got {raw[:40]!r}", field) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window(since: datetime | None = None, until: datetime | None = None) -> tuple[datetime, datetime]:
    """The report's window in whole hours: default the last 7 days up to now."""
    until = until or datetime.now(UTC)
    since = since or until - DEFAULT_WINDOW
    if since >= until:
        raise MonitoringError(f"since ({_iso(since)}) must be before until ({_iso(until)})", "since")
    end = hour_of(until)
    if end < until:
        end += timedelta(hours=1)
    return hour_of(since), end


def resolve_model(name: str | None) -> tuple[str, str | None, dict[str, Any] | None]:
    """(name, current version, training reference or None) of ``name`` or the active model."""
    from fraud_app.models.errors import InvalidModelNameError, ModelLoadError, ModelNotFoundError
    from fraud_app.models.store import get_active_model_name, read_metadata

    if name is None:
        name = get_active_model_name()
        if name is None:
            raise MonitoringError("no model is saved yet: train one first", "model", status=404)
    try:
        meta = read_metadata(name)
    except InvalidModelNameError as exc:
        raise MonitoringError(str(exc), "model") from None
    except ModelNotFoundError:
        raise MonitoringError(f"no saved model named {name!r}", "model", status=404) from None
    except ModelLoadError as exc:
        raise MonitoringError(f"model {name!r} cannot be read: {exc}", "model", status=404) from None
    version = meta.get("version")
    return name, version, model_reference(name, version)


def _bucket_key(hour: datetime, bucket: str) -> datetime:
    return hour.replace(hour=0) if bucket == "day" else hour


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def monitoring_report(model: str | None = None, since: datetime | None = None, until: datetime | None = None,
                      bucket: str = "hour", thresholds: Thresholds | None = None) -> dict[str, Any]:
    """The monitoring report of ``model`` (default: the active one) over ``[since, until)``; see docs/monitoring.md."""
    if bucket not in BUCKETS:
        raise MonitoringError(f"bucket must be one of {', '.join(BUCKETS)}, got {bucket!r}", "bucket")
    thresholds = thresholds or Thresholds.from_env()
    name, version, reference = resolve_model(model)
    start, end = window(since, until)
    vol, bins = monitoring_volume.c, monitoring_bins.c
    in_window = and_(vol.model == name, vol.hour >= start, vol.hour < end)
    volume_query = (select(vol.hour, vol.source, vol.model_version, func.sum(vol.count), func.sum(vol.flagged))
                    .where(in_window).group_by(vol.hour, vol.source, vol.model_version))
    bins_query = (select(bins.feature, bins.bin, func.sum(bins.count))
                  .where(bins.model == name, bins.model_version == (version or ""), bins.hour >= start,
                         bins.hour < end)
                  .group_by(bins.feature, bins.bin))
    p = predictions.c
    labels_query = (select(p.label, p.is_fraud, func.count())
                    .where(p.model == name, p.created_at >= start, p.created_at < end, p.label.is_not(None))
                    .group_by(p.label, p.is_fraud))
    with get_engine().connect() as conn:
        volume_rows = conn.execute(volume_query).all()
        bin_rows = conn.execute(bins_query).all()
        label_rows = conn.execute(labels_query).all()

    # volume and flagged, by bucket and source (every version of the model)
    buckets: dict[tuple[datetime, str], list[int]] = defaultdict(lambda: [0, 0])
    total = flagged = current_total = current_flagged = 0
    for hour, source, row_version, count, n_flagged in volume_rows:
        entry = buckets[(_bucket_key(hour, bucket), source)]
        entry[0] += int(count)
        entry[1] += int(n_flagged)
        total += int(count)
        flagged += int(n_flagged)
        if row_version == (version or ""):
            current_total += int(count)
            current_flagged += int(n_flagged)
    volume = [{"bucket": _iso(key[0]), "source": key[1], "count": c, "flagged": f}
              for key, (c, f) in sorted(buckets.items())]

    # live distributions of the current version, against its reference
    live: dict[str, dict[int, int]] = defaultdict(dict)
    for feature, index, count in bin_rows:
        live[feature][int(index)] = int(count)
    score_counts = [live[SCORE_FEATURE].get(i, 0) for i in range(SCORE_BINS)]
    score_total = sum(score_counts)
    reference_scores = (reference or {}).get("scores")
    score_histogram = {
        "edges": [i / SCORE_BINS for i in range(SCORE_BINS + 1)],
        "live": [c / score_total if score_total else 0.0 for c in score_counts],
        "reference": list(reference_scores["proportions"]) if reference_scores else None,
        "count": score_total,
    }
    psi_values: dict[str, float | None] = {}
    input_rows = 0
    if reference is not None:
        for feature in MODEL_FEATURES:
            expected = reference["features"][feature]["proportions"]
            counts = [live[feature].get(i, 0) for i in range(len(expected))]
            input_rows = max(input_rows, sum(counts))
            psi_values[feature] = psi(expected, counts) if sum(counts) else None

    # labels and realized precision/recall
    tallies: dict[tuple[str, bool], int] = defaultdict(int)
    for label, is_fraud, count in label_rows:
        tallies[(label, bool(is_fraud))] += int(count)
    n_fraud = tallies[("fraud", True)] + tallies[("fraud", False)]
    n_legit = tallies[("legitimate", True)] + tallies[("legitimate", False)]
    labeled = n_fraud + n_legit
    labeled_flagged = tallies[("fraud", True)] + tallies[("legitimate", True)]
    realized = {"precision": _ratio(tallies[("fraud", True)], labeled_flagged),
                "recall": _ratio(tallies[("fraud", True)], n_fraud),
                "labeled": labeled, "labeled_flagged": labeled_flagged}

    alerts: list[dict[str, Any]] = []
    if reference is not None and input_rows >= thresholds.min_rows:
        for feature, value in sorted(psi_values.items(), key=lambda item: -(item[1] or 0.0)):
            if value is not None and value > thresholds.psi:
                alerts.append({"kind": "psi", "feature": feature, "value": value, "threshold": thresholds.psi,
                               "message": f"{feature} has drifted: PSI {value:.3f} is above {thresholds.psi:g}"})
    validation_rate = reference_scores.get("flagged_rate") if reference_scores else None
    flagged_rate = _ratio(current_flagged, current_total)
    if validation_rate is not None and flagged_rate is not None and current_total >= thresholds.min_rows:
        low, high = validation_rate / thresholds.flag_band, validation_rate * thresholds.flag_band
        if not low <= flagged_rate <= high:
            bound = high if flagged_rate > high else low
            alerts.append({"kind": "flagged_rate", "value": flagged_rate, "threshold": bound,
                           "message": f"the model flags {flagged_rate:.2%} of transactions, "
                                      f"{'above' if bound == high else 'below'} the band {low:.2%}-{high:.2%} "
                                      f"around its validation rate {validation_rate:.2%}"})
    precision = realized["precision"]
    if precision is not None and labeled_flagged >= thresholds.min_labels and precision < thresholds.min_precision:
        alerts.append({"kind": "precision", "value": precision, "threshold": thresholds.min_precision,
                       "message": f"realized precision {precision:.1%} on {labeled_flagged} labeled flagged "
                                  f"predictions is below {thresholds.min_precision:.0%}"})

    return {
        "model": name, "model_version": version, "since": _iso(start), "until": _iso(end), "bucket": bucket,
        "reference": reference is not None, "message": None if reference is not None else NO_REFERENCE,
        "volume": volume,
        "totals": {"count": total, "flagged": flagged, "flagged_rate": _ratio(flagged, total),
                   "current_version_count": current_total, "current_version_flagged_rate": flagged_rate,
                   "validation_flagged_rate": validation_rate},
        "score_histogram": score_histogram,
        "psi": psi_values,
        "labels": {"fraud": n_fraud, "legitimate": n_legit, "unlabeled": max(0, total - labeled)},
        "realized": realized,
        "alerts": alerts,
        "thresholds": asdict(thresholds),
    }


def review_queue(model: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Unlabeled predictions of ``model`` (default: the active one), highest fraud probability first."""
    from fraud_app.storage.repository import _prediction_dict

    if not 1 <= int(limit) <= 1000:
        raise MonitoringError(f"limit must be between 1 and 1000, got {limit}", "limit")
    name = resolve_model(model)[0]
    p = predictions.c
    query = (select(predictions).where(p.model == name, p.label.is_(None))
             .order_by(p.fraud_probability.desc(), p.id.desc()).limit(int(limit)))
    with get_engine().connect() as conn:
        return [_prediction_dict(row) for row in conn.execute(query).mappings()]


def finite(value: float | None) -> float | None:
    """``value`` or None when it is not a finite number (for JSON)."""
    return value if value is not None and math.isfinite(value) else None
