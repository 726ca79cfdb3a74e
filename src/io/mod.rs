//! Arrow readers and writers: JSONL (plain, .gz, .zst), JSON arrays,
//! Parquet, plain text and WARC/WET/ARC crawl files in (as documents, or through a converter as chat
//! or preferences); Parquet out. Bad records become rejects with their
//! location; nothing is dropped silently.

pub mod chat;
pub mod chunker;
pub mod convert;
pub mod decompress;
pub mod docs;
pub mod files;
pub mod hash;
pub mod parquet_in;
pub mod parse;
pub mod reader;
pub mod table;
pub mod warc;
pub mod writer;
