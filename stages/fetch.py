"""Stage fetch: copy the corpus named by ``data.source`` into data/raw with a manifest."""

from pathlib import Path

from ser.fetch import check_rejected, fetch
from ser.params import load_params

RAW_DIR = Path("data/raw")
REJECTED = Path("reports/fetch/rejected.csv")


def main() -> None:
    data = load_params().data
    result = fetch(data.source, RAW_DIR, data.sha256)
    REJECTED.parent.mkdir(parents=True, exist_ok=True)
    result.rejected.to_csv(REJECTED, index=False)
    print(f"fetched {len(result.manifest)} clips, rejected {len(result.rejected)} files (see {REJECTED})")
    check_rejected(result, data.max_rejected_fraction)


if __name__ == "__main__":
    main()
