//! Content hashes of tables that depend on the rows and their order only,
//! never on how they were cut into batches, files or shards.
//!
//! Each row gets a blake3 digest of its column values (length-prefixed, in
//! order). The table's hash is a polynomial over those digests,
//! `H = Σ d_i · B^(n-1-i) mod P` in two lanes (P = 2^61 − 1, two bases), which
//! two halves combine into exactly: `H(xy) = H(x) · B^|y| + H(y)`. So shard
//! parts merge into the same hash an unsharded run computes.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};

const P: u64 = (1 << 61) - 1;
const BASES: [u64; 2] = [0x1f3d_5b79_a3c2_e4f1 % P, 0x0bad_cafe_f00d_1234 % P];

fn mulmod(a: u64, b: u64) -> u64 {
    let x = (a as u128) * (b as u128);
    let r = ((x & P as u128) + (x >> 61)) as u64;
    let r = (r & P) + (r >> 61);
    if r >= P { r - P } else { r }
}

fn addmod(a: u64, b: u64) -> u64 {
    let r = a + b;
    if r >= P { r - P } else { r }
}

fn powmod(mut b: u64, mut e: u64) -> u64 {
    let mut r = 1;
    while e > 0 {
        if e & 1 == 1 {
            r = mulmod(r, b);
        }
        b = mulmod(b, b);
        e >>= 1;
    }
    r
}

/// The running hash of a row sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowsHash {
    /// The two lanes.
    pub lanes: [u64; 2],
    /// Rows hashed.
    pub rows: u64,
}

impl RowsHash {
    /// Appends one row's digest.
    pub fn push(&mut self, digest: &[u8; 32]) {
        for (k, lane) in self.lanes.iter_mut().enumerate() {
            let d = u64::from_le_bytes(digest[8 * k..8 * k + 8].try_into().unwrap_or([0; 8])) % P;
            *lane = addmod(mulmod(*lane, BASES[k]), d);
        }
        self.rows += 1;
    }

    /// Appends a whole sequence hashed separately (a later shard part).
    pub fn append(&mut self, other: &RowsHash) {
        for (k, lane) in self.lanes.iter_mut().enumerate() {
            *lane = addmod(mulmod(*lane, powmod(BASES[k], other.rows)), other.lanes[k]);
        }
        self.rows += other.rows;
    }

    /// The hash as hex.
    pub fn hex(&self) -> String {
        format!("{:016x}{:016x}{:016x}", self.lanes[0], self.lanes[1], self.rows)
    }
}

/// Hashes every row of `batch` into `h`.
pub fn hash_rows(batch: &RecordBatch, h: &mut RowsHash) {
    for d in row_digests(batch) {
        h.push(&d);
    }
}

/// The digest of each row of `batch` (column values, length-prefixed).
pub fn row_digests(batch: &RecordBatch) -> Vec<[u8; 32]> {
    let mut out = Vec::with_capacity(batch.num_rows());
    let opts = FormatOptions::default();
    let cols = batch.columns();
    let fmts: Vec<Option<ArrayFormatter>> = cols
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => None,
            t if structural(t) => None,
            _ => ArrayFormatter::try_new(c.as_ref(), &opts).ok(),
        })
        .collect();
    let mut s = String::new();
    for row in 0..batch.num_rows() {
        let mut rh = blake3::Hasher::new();
        for (c, f) in cols.iter().zip(&fmts) {
            if c.is_null(row) {
                rh.update(&[0]);
                continue;
            }
            let bytes: &[u8] = match c.data_type() {
                DataType::Utf8 => c.as_string::<i32>().value(row).as_bytes(),
                DataType::LargeUtf8 => c.as_string::<i64>().value(row).as_bytes(),
                DataType::Utf8View => c.as_string_view().value(row).as_bytes(),
                t if structural(t) => {
                    rh.update(&[2]);
                    hash_string_list(c.as_ref(), row, &mut rh);
                    continue;
                }
                _ => {
                    s.clear();
                    if let Some(f) = f {
                        use std::fmt::Write;
                        let _ = write!(s, "{}", f.value(row));
                    }
                    s.as_bytes()
                }
            };
            rh.update(&[1]);
            rh.update(&(bytes.len() as u64).to_le_bytes());
            rh.update(bytes);
        }
        out.push(*rh.finalize().as_bytes());
    }
    out
}

/// Lists of strings, or of structs of strings (chat messages), are hashed
/// by structure: their display form is ambiguous (a message whose content
/// holds `}, {role: user, content: ` would read as two messages).
fn structural(t: &DataType) -> bool {
    match t {
        DataType::List(f) => match f.data_type() {
            DataType::Utf8 => true,
            DataType::Struct(fs) => fs.iter().all(|f| f.data_type() == &DataType::Utf8),
            _ => false,
        },
        _ => false,
    }
}

/// Hashes row `row` of a [`structural`] list column: the item count, then
/// each string length-prefixed (0 for a null), item by item.
fn hash_string_list(c: &dyn Array, row: usize, rh: &mut blake3::Hasher) {
    let list = c.as_list::<i32>();
    let offsets = list.value_offsets();
    let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
    rh.update(&((end - start) as u64).to_le_bytes());
    let values = list.values();
    let strings: Vec<&arrow::array::StringArray> = match values.data_type() {
        DataType::Struct(_) => values.as_struct().columns().iter().map(|a| a.as_string::<i32>()).collect(),
        _ => vec![values.as_string::<i32>()],
    };
    for i in start..end {
        for s in &strings {
            if s.is_null(i) {
                rh.update(&[0]);
            } else {
                let v = s.value(i).as_bytes();
                rh.update(&[1]);
                rh.update(&(v.len() as u64).to_le_bytes());
                rh.update(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use std::sync::Arc;

    fn batch(v: &[&str]) -> RecordBatch {
        let a: StringArray = v.iter().map(|s| Some(*s)).collect();
        RecordBatch::try_from_iter([("text", Arc::new(a) as _)]).unwrap()
    }

    #[test]
    fn splits_do_not_change_the_hash_but_order_and_content_do() {
        let rows = ["a", "bb", "", "ccc", "d"];
        let mut whole = RowsHash::default();
        hash_rows(&batch(&rows), &mut whole);
        for cut in 0..=rows.len() {
            let (mut x, mut y) = (RowsHash::default(), RowsHash::default());
            hash_rows(&batch(&rows[..cut]), &mut x);
            hash_rows(&batch(&rows[cut..]), &mut y);
            x.append(&y);
            assert_eq!(x, whole, "cut at {cut}");
        }
        let mut swapped = RowsHash::default();
        hash_rows(&batch(&["bb", "a", "", "ccc", "d"]), &mut swapped);
        assert_ne!(swapped, whole);
        let mut other = RowsHash::default();
        hash_rows(&batch(&["a", "bb", "", "ccc", "e"]), &mut other);
        assert_ne!(other, whole);
    }

    #[test]
    fn messages_hash_by_structure_not_by_display() {
        use crate::io::chat::{ChatBuilder, Message, Role};
        let chat = |msgs: &[Message]| {
            let mut b = ChatBuilder::with_capacity(1, 64);
            b.push("id", msgs, "s", None, None);
            row_digests(&b.finish())[0]
        };
        let one = chat(&[Message::new(Role::User, "a}, {role: user, content: b")]);
        let two = chat(&[Message::new(Role::User, "a"), Message::new(Role::User, "b")]);
        assert_ne!(one, two);
        assert_eq!(one, chat(&[Message::new(Role::User, "a}, {role: user, content: b")]));
        assert_ne!(chat(&[Message::new(Role::User, "x")]), chat(&[Message::new(Role::Assistant, "x")]));
    }
}
