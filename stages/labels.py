"""Stage labels: every fetched corpus on one label set, in data/manifest.csv; what was left aside, listed."""

import json

from ser.labels import combine
from ser.params import load_params
from ser.paths import FETCH_REPORT_DIR, MANIFEST, RAW_DIR


def main() -> None:
    data = load_params().data
    for stale in sorted(p.name for p in RAW_DIR.iterdir() if p.is_dir() and p.name not in data.sources):
        print(f"note: {RAW_DIR / stale} is not in data.sources (left from an earlier run): not used; remove it to save space")
    combined = combine(RAW_DIR, data)
    combined.manifest.to_csv(MANIFEST, index=False)
    FETCH_REPORT_DIR.mkdir(parents=True, exist_ok=True)
    combined.rejected.to_csv(FETCH_REPORT_DIR / "rejected.csv", index=False)
    (FETCH_REPORT_DIR / "summary.json").write_text(json.dumps(combined.summary, indent=2) + "\n")
    print(json.dumps(combined.summary, indent=2))


if __name__ == "__main__":
    main()
