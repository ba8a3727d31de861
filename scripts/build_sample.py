"""Rebuild the shipped sample (stockpred/data/sample_data/*.parquet) from the shared CSV tree.

Usage: python scripts/build_sample.py [SHARED_TUSHARE_DIR]   (default ../shared/data/tushare)
The copy is row for row; tests/test_sample.py checks it against the CSVs.
"""

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from stockpred.data.sample import read_tushare_csv_tree, sample_dir

root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / ".." / "shared" / "data" / "tushare"
out = sample_dir()
out.mkdir(parents=True, exist_ok=True)
total = 0
for name, table in read_tushare_csv_tree(root).items():
    path = out / f"{name}.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path,
                   compression="zstd", compression_level=19)
    total += path.stat().st_size
    print(f"{name:12s} {len(table):8d} rows {path.stat().st_size / 1e6:6.2f} MB")
print(f"total {total / 1e6:.2f} MB")
