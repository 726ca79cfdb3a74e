//! The `expr` step: a SQL boolean expression over a batch's columns
//! (`length(text) > 500 AND lang = 'en'`), evaluated with polars.
//!
//! The expression is parsed once when the node is built (and at validation,
//! so a typo fails before anything runs). Per batch, only the columns it
//! names are copied into a polars `DataFrame`; the result is one keep flag
//! per row. A row whose result is null (e.g. `lang = 'en'` where `lang` is
//! null) is dropped with its own reason, so nothing vanishes unexplained.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, UInt8Type, UInt32Type, UInt64Type};
use polars::prelude::{Column, DataFrame, Expr, IntoColumn, IntoLazy, NamedFrom, PlSmallStr, Series};

/// A parsed `expr` step.
#[derive(Clone)]
pub struct ExprFilter {
    sql: String,
    expr: Expr,
    columns: Vec<String>,
}

impl std::fmt::Debug for ExprFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExprFilter")
            .field("sql", &self.sql)
            .field("columns", &self.columns)
            .finish()
    }
}

/// What the expression said about one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// True: keep.
    Keep,
    /// False: drop.
    False,
    /// Null: drop, with its own reason.
    Null,
}

impl ExprFilter {
    /// Parses `sql` (a SQL expression, not a statement).
    pub fn new(sql: &str) -> Result<Self, String> {
        if sql.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        let expr = polars::sql::sql_expr(sql).map_err(|e| format!("invalid SQL expression `{sql}`: {}", one_line(&e.to_string())))?;
        let mut columns: Vec<String> = expr.clone().meta().root_names().iter().map(|s| s.to_string()).collect();
        columns.sort();
        columns.dedup();
        Ok(ExprFilter {
            sql: sql.to_string(),
            expr,
            columns,
        })
    }

    /// The column names the expression reads.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The expression as written.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Evaluates over `n_rows` rows; `cols` holds (at least) the columns of
    /// [`ExprFilter::columns`], each `n_rows` long.
    pub fn eval(&self, cols: &[(&str, ArrayRef)], n_rows: usize) -> Result<Vec<Verdict>, String> {
        let mut frame: Vec<Column> = Vec::with_capacity(self.columns.len());
        for name in &self.columns {
            let Some((_, a)) = cols.iter().find(|(n, _)| n == name) else {
                let have: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "`{}` names column `{name}`, which the input does not have (columns: {})",
                    self.sql,
                    have.join(", ")
                ));
            };
            frame.push(to_series(name, a)?.into_column());
        }
        let out = if frame.is_empty() {
            // A constant expression: evaluate on a one-column frame of the right height.
            let dummy = Series::new(PlSmallStr::from_static("__row"), vec![0u8; n_rows]).into_column();
            DataFrame::new(n_rows, vec![dummy])
        } else {
            DataFrame::new(n_rows, frame)
        }
        .map_err(|e| one_line(&e.to_string()))?
        .lazy()
        .select([self.expr.clone().alias("__keep")])
        .collect()
        .map_err(|e| format!("evaluating `{}`: {}", self.sql, one_line(&e.to_string())))?;
        let col = out
            .column("__keep")
            .map_err(|e| one_line(&e.to_string()))?
            .as_materialized_series()
            .clone();
        let b = col
            .bool()
            .map_err(|_| format!("`{}` gives {} values, not booleans (true keeps a row)", self.sql, col.dtype()))?;
        let verdict = |v: Option<bool>| match v {
            Some(true) => Verdict::Keep,
            Some(false) => Verdict::False,
            None => Verdict::Null,
        };
        match b.len() {
            n if n == n_rows => Ok((0..n).map(|i| verdict(b.get(i))).collect()),
            1 => Ok(vec![verdict(b.get(0)); n_rows]),
            n => Err(format!("`{}` gives {n} values for {n_rows} rows (an aggregate?)", self.sql)),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Copies an Arrow array into a polars Series of the same values.
fn to_series(name: &str, a: &ArrayRef) -> Result<Series, String> {
    let n = PlSmallStr::from(name);
    let opt = |i: usize| a.is_valid(i);
    Ok(match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            Series::new(n, (0..s.len()).map(|i| opt(i).then(|| s.value(i))).collect::<Vec<_>>())
        }
        DataType::LargeUtf8 => {
            let s = a.as_string::<i64>();
            Series::new(n, (0..s.len()).map(|i| opt(i).then(|| s.value(i))).collect::<Vec<_>>())
        }
        DataType::Utf8View => {
            let s = a.as_string_view();
            Series::new(n, (0..s.len()).map(|i| opt(i).then(|| s.value(i))).collect::<Vec<_>>())
        }
        DataType::Boolean => {
            let b = a.as_boolean();
            Series::new(n, (0..b.len()).map(|i| opt(i).then(|| b.value(i))).collect::<Vec<_>>())
        }
        DataType::Float64 => Series::new(n, a.as_primitive::<Float64Type>().iter().collect::<Vec<_>>()),
        DataType::Float32 => Series::new(n, a.as_primitive::<Float32Type>().iter().collect::<Vec<_>>()),
        DataType::Int64 => Series::new(n, a.as_primitive::<Int64Type>().iter().collect::<Vec<_>>()),
        DataType::Int32 => Series::new(n, a.as_primitive::<Int32Type>().iter().collect::<Vec<_>>()),
        DataType::UInt64 => Series::new(n, a.as_primitive::<UInt64Type>().iter().collect::<Vec<_>>()),
        DataType::UInt32 => Series::new(n, a.as_primitive::<UInt32Type>().iter().collect::<Vec<_>>()),
        DataType::UInt8 => Series::new(n, a.as_primitive::<UInt8Type>().iter().collect::<Vec<_>>()),
        t => {
            return Err(format!(
                "column `{name}` has type {t}, which `expr` cannot read (text, numbers and booleans only)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use std::sync::Arc;

    fn cols() -> Vec<(&'static str, ArrayRef)> {
        let text: ArrayRef = Arc::new(StringArray::from(vec!["short", "a much longer text here", "mid text"]));
        let lang: ArrayRef = Arc::new(StringArray::from(vec![Some("en"), Some("en"), None]));
        let score: ArrayRef = Arc::new(Float64Array::from(vec![0.9, 0.5, 0.99]));
        vec![("text", text), ("lang", lang), ("lang_score", score)]
    }

    #[test]
    fn keeps_rows_where_the_expression_holds() {
        let f = ExprFilter::new("length(text) > 6 AND lang = 'en'").unwrap();
        assert_eq!(f.columns(), ["lang", "text"]);
        let v = f.eval(&cols(), 3).unwrap();
        // Row 3's lang is null: null, not false.
        assert_eq!(v, [Verdict::False, Verdict::Keep, Verdict::Null]);
        let v = ExprFilter::new("lang_score >= 0.9").unwrap().eval(&cols(), 3).unwrap();
        assert_eq!(v, [Verdict::Keep, Verdict::False, Verdict::Keep]);
    }

    #[test]
    fn bad_expressions_are_errors_not_panics() {
        assert!(ExprFilter::new("").is_err());
        assert!(ExprFilter::new("length(text) >").is_err());
        assert!(ExprFilter::new("SELECT * FROM t").is_err());
        let missing = ExprFilter::new("nope > 1").unwrap().eval(&cols(), 3).unwrap_err();
        assert!(missing.contains("`nope`"), "{missing}");
        let not_bool = ExprFilter::new("length(text)").unwrap().eval(&cols(), 3).unwrap_err();
        assert!(not_bool.contains("not booleans"), "{not_bool}");
    }

    #[test]
    fn constant_expressions_broadcast() {
        let v = ExprFilter::new("1 = 1").unwrap().eval(&cols(), 3).unwrap();
        assert_eq!(v, [Verdict::Keep; 3]);
    }
}
