"""Stage fetch@<corpus>: copy one corpus of ``data.sources`` into data/raw/<corpus> with its manifest."""

import sys

from ser.fetch import REJECTED_FILE, check_rejected, fetch
from ser.params import ParamsError, load_params
from ser.paths import RAW_DIR


def main(corpus: str) -> None:
    data = load_params().data
    if corpus not in data.sources:
        raise ParamsError(f"data.sources: no corpus {corpus!r} (corpora: {', '.join(data.sources)})")
    result = fetch(corpus, data.sources[corpus], RAW_DIR / corpus)
    print(f"{corpus}: fetched {len(result.manifest)} clips, rejected {len(result.rejected)} files "
          f"(see {RAW_DIR / corpus / REJECTED_FILE})")
    check_rejected(result, data.max_rejected_fraction, corpus)


if __name__ == "__main__":
    main(sys.argv[1])
