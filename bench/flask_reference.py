"""The reference a user would otherwise write: Flask + Flask-SQLAlchemy, served by waitress.

    .venv/bin/python -m bench.flask_reference --port 8899 --database sqlite:///ref.sqlite3 --model bench_lightgbm

The same endpoint as the app's ``POST /api/predictions`` for one transaction: the same saved model
(loaded once), the same validation (:func:`fraud_app.inference.parse_request`), one row per
prediction stored through the ORM, one commit per request, JSON out. SQLite gets the same WAL and
``synchronous=NORMAL`` as the app, so the comparison is of the serving stacks, not of fsync.
Needs the ``bench`` extra (``pip install -e .[bench]``); never part of the app.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column


def create_app(database_url: str, model_name: str) -> Flask:
    from fraud_app.data import MODEL_FEATURES
    from fraud_app.inference import PredictionInputError, parse_request
    from fraud_app.models import load_model

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db = SQLAlchemy(app)

    class Prediction(db.Model):
        __tablename__ = "predictions"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
        model: Mapped[str] = mapped_column(String(128))
        model_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
        features: Mapped[dict] = mapped_column(JSON)
        fraud_probability: Mapped[float] = mapped_column(Float)
        is_fraud: Mapped[bool] = mapped_column(Boolean)
        threshold: Mapped[float] = mapped_column(Float)
        source: Mapped[str] = mapped_column(String(8))

    model = load_model(model_name)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            @event.listens_for(db.engine, "connect")
            def _pragmas(dbapi_connection, _record):  # noqa: ANN001
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA busy_timeout = 5000")
                cursor.close()
        db.create_all()

    @app.post("/api/predictions")
    def predict():
        payload = request.get_json(silent=True)
        try:
            values, _, _ = parse_request(payload)
        except PredictionInputError as exc:
            return jsonify({"error": {"code": 400, "message": exc.message, "field": exc.field}}), 400
        probability = float(model.predict_proba_array(values)[0])
        row = Prediction(created_at=datetime.now(UTC), model=model.name, model_version=model.version,
                         features=dict(zip(MODEL_FEATURES, values[0].tolist(), strict=True)),
                         fraud_probability=probability, is_fraud=probability >= model.threshold,
                         threshold=float(model.threshold), source="api")
        db.session.add(row)
        db.session.commit()
        return jsonify({"id": row.id, "created_at": row.created_at.isoformat(), "model": row.model,
                        "model_version": row.model_version, "fraud_probability": row.fraud_probability,
                        "is_fraud": row.is_fraud, "threshold": row.threshold, "source": row.source}), 201

    @app.get("/api/health")
    def health():
        return jsonify({"status": "ok"})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    from waitress import serve

    serve(create_app(args.database, args.model), host="127.0.0.1", port=args.port, threads=args.threads,
          _quiet=True)


if __name__ == "__main__":
    main()
