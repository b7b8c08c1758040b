//! Tables on disk: `tables/<name>.csv` and `tables/<name>.parquet`, written with
//! polars, and read back from parquet to rebuild a report.

use std::path::Path;

use anyhow::{bail, Context, Result};
use polars::prelude::{
    CsvWriter, DataFrame, DataType, IntoColumn, NamedFrom, ParquetReader, ParquetWriter, SerReader,
    SerWriter, Series,
};

use super::store::write_atomic;
use crate::experiment::outputs::{Column, Table};

/// A polars frame with the table's columns, in order.
pub fn to_frame(table: &Table) -> Result<DataFrame> {
    let columns = table
        .columns
        .iter()
        .map(|(name, column)| {
            let name = name.as_str().into();
            let series = match column {
                Column::Str(v) => Series::new(name, v),
                Column::I64(v) => Series::new(name, v),
                Column::F64(v) => Series::new(name, v),
                Column::Bool(v) => Series::new(name, v),
            };
            series.into_column()
        })
        .collect::<Vec<_>>();
    let height = table.rows();
    DataFrame::new(height, columns).with_context(|| format!("building table {}", table.name))
}

/// The table held in a polars frame.
pub fn from_frame(name: &str, frame: &DataFrame) -> Result<Table> {
    let mut table = Table::new(name);
    for column in frame.columns() {
        let series = column.as_materialized_series();
        let values = match series.dtype() {
            DataType::String => Column::Str(
                series
                    .str()?
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect(),
            ),
            DataType::Int64 => Column::I64(series.i64()?.iter().collect()),
            DataType::Float64 => Column::F64(series.f64()?.iter().collect()),
            DataType::Boolean => Column::Bool(series.bool()?.iter().collect()),
            DataType::Null => Column::F64(vec![None; series.len()]),
            other => bail!(
                "table {name}: column {} has unsupported type {other}",
                series.name()
            ),
        };
        table.columns.push((series.name().to_string(), values));
    }
    Ok(table)
}

/// Writes `tables/<name>.csv` and `tables/<name>.parquet` under `dir`, each atomically.
pub fn write(dir: &Path, table: &Table) -> Result<()> {
    let mut frame = to_frame(table)?;
    let mut csv = Vec::new();
    CsvWriter::new(&mut csv)
        .include_header(true)
        .finish(&mut frame)
        .with_context(|| format!("writing table {} as CSV", table.name))?;
    write_atomic(
        &dir.join("tables").join(format!("{}.csv", table.name)),
        &csv,
    )?;
    let mut parquet = Vec::new();
    ParquetWriter::new(&mut parquet)
        .finish(&mut frame)
        .with_context(|| format!("writing table {} as parquet", table.name))?;
    write_atomic(
        &dir.join("tables").join(format!("{}.parquet", table.name)),
        &parquet,
    )?;
    Ok(())
}

/// Reads `tables/<name>.parquet` under `dir`.
pub fn read(dir: &Path, name: &str) -> Result<Table> {
    let path = dir.join("tables").join(format!("{name}.parquet"));
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let frame = ParquetReader::new(file)
        .finish()
        .with_context(|| format!("reading {}", path.display()))?;
    from_frame(name, &frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_through_parquet_and_csv() {
        let table = Table::new("t")
            .with("s", Column::Str(vec![Some("a".into()), None]))
            .with("i", Column::I64(vec![Some(1), Some(-2)]))
            .with("f", Column::F64(vec![Some(0.1), None]))
            .with("b", Column::Bool(vec![Some(true), None]));
        let dir = std::env::temp_dir().join(format!("wb-tables-{}", std::process::id()));
        write(&dir, &table).unwrap();
        assert_eq!(read(&dir, "t").unwrap(), table);
        let csv = std::fs::read_to_string(dir.join("tables/t.csv")).unwrap();
        assert_eq!(csv.lines().next(), Some("s,i,f,b"));
        assert_eq!(csv.lines().nth(1), Some("a,1,0.1,true"));
        std::fs::remove_dir_all(dir).ok();
    }
}
